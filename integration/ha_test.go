//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// haNode is one Vault server of a raft cluster.
type haNode struct {
	*Vault
	id string
}

// startRaftCluster starts n Vault servers with integrated storage on loopback
// ports, initialises the first with one key share, unseals it, and lets the
// others join it (retry_join) and unseals them. It returns the nodes, the
// first being the active one.
func startRaftCluster(t *testing.T, n int) []*haNode {
	t.Helper()
	requireSetup(t)
	nodes := make([]*haNode, n)
	var leaderAddr string
	for i := range nodes {
		dir := t.TempDir()
		api, cluster := freePort(t), freePort(t)
		v := &Vault{t: t, dir: dir, Addr: fmt.Sprintf("http://127.0.0.1:%d", api),
			log: filepath.Join(dir, "vault.log"), conf: filepath.Join(dir, "vault.hcl")}
		id := fmt.Sprintf("node%d", i+1)
		join := ""
		if i == 0 {
			leaderAddr = v.Addr
		} else {
			join = fmt.Sprintf("  retry_join {\n    leader_api_addr = %q\n  }\n", leaderAddr)
		}
		writeFile(t, v.conf, fmt.Sprintf(`
storage "raft" {
  path                   = %q
  node_id                = %q
  performance_multiplier = 1
%s}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr         = %q
cluster_addr     = "https://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
`, filepath.Join(dir, "raft"), id, join, api, cluster, v.Addr, cluster, pluginDir))
		if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &haNode{Vault: v, id: id}
	}
	for _, node := range nodes {
		node.start()
	}
	first := nodes[0]
	unsealKey, rootToken := first.initOneShare()
	for _, node := range nodes {
		node.unsealKey, node.Token = unsealKey, rootToken
	}
	first.unseal()
	// Joiners are non-voters until autopilot finds them stable (10 s by
	// default); a 3-node cluster only survives losing its leader once the
	// other two vote.
	first.Run("operator", "raft", "autopilot", "set-config", "-server-stabilization-time=2s")
	for _, node := range nodes[1:] {
		// retry_join first has to find the initialised leader; until then
		// the node says it is not initialised.
		var r CLIResult
		if !eventually(60*time.Second, 250*time.Millisecond, func() bool {
			r = node.CLI("operator", "unseal", node.unsealKey)
			return r.Err == nil
		}) {
			t.Fatalf("%s could not be unsealed: %v %s\n%s", node.id, r.Err, r.Stderr, tail(node.log, 40))
		}
		// 429: unsealed standby, which it only becomes once it joined.
		if err := node.waitHealth(http.StatusTooManyRequests, 60*time.Second); err != nil {
			t.Fatalf("%s did not become a standby: %v\n%s", node.id, err, tail(node.log, 40))
		}
	}
	waitVoters(t, first, n)
	// Standbys forward requests only once they know the active node.
	for _, node := range nodes[1:] {
		if !eventually(30*time.Second, 100*time.Millisecond, func() bool {
			li, err := sysLeader(node.Addr)
			return err == nil && li.LeaderAddress == first.Addr
		}) {
			t.Fatalf("%s does not know the active node", node.id)
		}
	}
	return nodes
}

// waitVoters waits until the raft configuration seen by node has n voters.
func waitVoters(t *testing.T, node *haNode, n int) {
	t.Helper()
	var peers struct {
		Data struct {
			Config struct {
				Servers []struct {
					NodeID string `json:"node_id"`
					Voter  bool   `json:"voter"`
				} `json:"servers"`
			} `json:"config"`
		} `json:"data"`
	}
	voters := func() bool {
		r := node.CLI("operator", "raft", "list-peers", "-format=json")
		if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &peers) != nil {
			return false
		}
		count := 0
		for _, s := range peers.Data.Config.Servers {
			if s.Voter {
				count++
			}
		}
		return count == n
	}
	if !eventually(60*time.Second, 250*time.Millisecond, voters) {
		t.Fatalf("raft did not reach %d voters: %+v", n, peers)
	}
}

// waitLeader waits until one of nodes says it is the leader and returns it
// and the others.
func waitLeader(t *testing.T, nodes []*haNode) (*haNode, []*haNode) {
	t.Helper()
	var leader *haNode
	if !eventually(60*time.Second, 100*time.Millisecond, func() bool {
		for _, node := range nodes {
			if li, err := sysLeader(node.Addr); err == nil && li.IsSelf {
				leader = node
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no node became leader within 60 s\n%s", tail(nodes[0].log, 30))
	}
	var others []*haNode
	for _, node := range nodes {
		if node != leader {
			others = append(others, node)
		}
	}
	return leader, others
}

// leaderInfo is sys/leader's answer.
type leaderInfo struct {
	HAEnabled     bool   `json:"ha_enabled"`
	IsSelf        bool   `json:"is_self"`
	LeaderAddress string `json:"leader_address"`
}

func sysLeader(addr string) (leaderInfo, error) {
	var li leaderInfo
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(addr + "/v1/sys/leader")
	if err != nil {
		return li, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return li, fmt.Errorf("sys/leader answered %d", resp.StatusCode)
	}
	return li, json.NewDecoder(resp.Body).Decode(&li)
}

// kill ends the node's process group at once, as a crash or power loss would.
func (n *haNode) kill(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(-n.proc.Pid(), syscall.SIGKILL)
	select {
	case <-n.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die on SIGKILL", n.id)
	}
}

// TestHAFailover: a three-node raft cluster with the plugin mounted once.
// Reads through standbys are forwarded to the active node and get its cached
// token; when the active node is killed, a standby takes over and reads
// resume with the same token, loaded from replicated storage, without a new
// request to the IdP.
func TestHAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("HA test skipped in -short mode")
	}
	// Three Vault processes, mostly waiting (on raft, elections, the
	// periodic function): beside the other tests.
	t.Parallel()
	began := time.Now()
	nodes := startRaftCluster(t, 3)
	active := nodes[0]
	active.RegisterAndMount()
	t.Logf("cluster of %d nodes up, plugin mounted, in %s", len(nodes), time.Since(began).Round(time.Millisecond))
	for _, node := range nodes {
		// The catalog is replicated; each node has the binary in its plugin_directory.
		if out := node.Run("plugin", "list", "secret"); !strings.Contains(out, pluginName) {
			t.Fatalf("%s's plugin catalog lacks %s:\n%s", node.id, pluginName, out)
		}
	}

	idp := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "ha-client", ClientSecret: "ha-secret",
		Scopes: []string{"read"}, TokenTTL: time.Hour})
	active.Write("idp/config/ha", "token_url="+idp.TokenURL(), "client_id=ha-client", "client_secret=ha-secret", "scopes=read")
	active.Write("idp/roles/ha", "config=ha")

	// Through a standby: over HTTP, retried while the standby's forwarding
	// connection to the active node settles; then with the CLI.
	var tok string
	var lastErr error
	if !eventually(30*time.Second, 200*time.Millisecond, func() bool {
		tok, lastErr = newCredsReader(active.Token, 1).read(nodes[1].Addr, "ha")
		return lastErr == nil
	}) {
		t.Fatalf("reading through the standby %s: %v", nodes[1].id, lastErr)
	}
	if got := nodes[1].ReadCreds("ha").String("access_token"); got != tok {
		t.Fatal("a second read through the standby handed out another token")
	}
	if got := nodes[2].ReadCreds("ha").String("access_token"); got != tok {
		t.Fatal("the two standbys handed out different tokens")
	}
	if got := active.ReadCreds("ha").String("access_token"); got != tok {
		t.Fatal("the active node handed out another token than the standbys")
	}
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("the IdP saw %d token requests for reads through three nodes, want 1", n)
	}
	li, err := sysLeader(nodes[1].Addr)
	if err != nil || li.IsSelf || li.LeaderAddress != active.Addr {
		t.Fatalf("sys/leader on a standby = %+v (%v), want the first node %s", li, err, active.Addr)
	}

	// Round 1: crash the active node.
	survivors := failover(t, active, nodes[1:], "SIGKILL", tok, idp)

	// Round 2: bring node1 back (it rejoins from its raft data as a
	// standby), then stop the current leader gracefully.
	restarted := time.Now()
	active.start()
	active.Run("operator", "unseal", active.unsealKey)
	if err := active.waitHealth(http.StatusTooManyRequests, 60*time.Second); err != nil {
		t.Fatalf("node1 did not come back as a standby: %v\n%s", err, tail(active.log, 30))
	}
	leader, _ := waitLeader(t, survivors)
	waitVoters(t, leader, 3)
	// A standby that just unsealed learns the active node's address shortly after.
	var got string
	if !eventually(30*time.Second, 100*time.Millisecond, func() bool {
		got, lastErr = newCredsReader(leader.Token, 1).read(active.Addr, "ha")
		return lastErr == nil
	}) || got != tok {
		t.Fatalf("read through the restarted node1: err=%v, same token=%v", lastErr, got == tok)
	}
	t.Logf("node1 restarted, rejoined and served the same token in %s", time.Since(restarted).Round(time.Millisecond))
	var rest []*haNode
	for _, node := range nodes {
		if node != leader {
			rest = append(rest, node)
		}
	}
	failover(t, leader, rest, "SIGTERM", tok, idp)
	t.Logf("HA test took %s", time.Since(began).Round(time.Millisecond))
}

// failover stops the active node (SIGKILL: a crash; SIGTERM: a graceful
// shutdown, which steps down), waits for one of the others to lead, and
// checks that reads through the new standby and the new active node resume
// with the same token and no IdP request. It returns the nodes left.
func failover(t *testing.T, active *haNode, others []*haNode, signal, tok string, idp *FakeIdP) []*haNode {
	t.Helper()
	requests := idp.TokenRequests()
	stopped := time.Now()
	if signal == "SIGKILL" {
		active.kill(t)
	} else {
		active.proc.stop(t)
	}
	leader, standbys := waitLeader(t, others)
	elected := time.Since(stopped)
	standby := standbys[0]

	reader := newCredsReader(leader.Token, 4)
	defer reader.close()
	var got string
	var lastErr error
	if !eventually(60*time.Second, 50*time.Millisecond, func() bool {
		got, lastErr = reader.read(standby.Addr, "ha")
		return lastErr == nil
	}) {
		t.Fatalf("reads through the standby did not resume within 60 s of the election: %v\n%s", lastErr, tail(leader.log, 30))
	}
	resumed := time.Since(stopped)
	if got != tok {
		t.Errorf("%s: after the failover the token changed; want the cached one from replicated storage", signal)
	}
	if got, err := reader.read(leader.Addr, "ha"); err != nil || got != tok {
		t.Errorf("%s: read through the new active node: err=%v, same token=%v", signal, err, got == tok)
	}
	if got := standby.ReadCreds("ha").String("access_token"); got != tok {
		t.Errorf("%s: CLI read through the standby gave another token", signal)
	}
	if n := idp.TokenRequests(); n != requests {
		t.Errorf("%s: the IdP saw %d token requests during the failover, want none", signal, n-requests)
	}
	if li, err := sysLeader(standby.Addr); err != nil || li.LeaderAddress != leader.Addr {
		t.Errorf("%s: sys/leader on the standby = %+v (%v), want %s", signal, li, err, leader.Addr)
	}
	if strings.Contains(readFile(t, leader.log), "ha-secret") {
		t.Errorf("%s: the new leader's log holds the client secret", signal)
	}
	t.Logf("failover (%s of %s): %s leader after %s; reads through the standby %s resumed after %s; same token; IdP requests %d",
		signal, active.id, leader.id, elected.Round(time.Millisecond), standby.id, resumed.Round(time.Millisecond), idp.TokenRequests())
	return others
}
