package backend

// ReadPath is which read of the engine served a token: the fixed label
// set of the reads_total series, so that they stay bounded.
type ReadPath int

// The engine's token reads.
const (
	ReadCreds ReadPath = iota // creds/<role>: a leased secret
	ReadToken                 // token/<role>: no lease
)

var readPaths = [...]string{ReadCreds: "creds", ReadToken: "token"}

// String is the path label.
func (p ReadPath) String() string { return readPaths[p] }
