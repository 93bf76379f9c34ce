// Package client is the Go client of a kvhost server: the public gRPC API
// (package kvhost.v1) behind ordinary Go methods that take a context first
// and return the domain types of package kv. It links no plugin
// machinery: its only kvhost imports are kv, the API and its error table.
//
// # Connecting
//
//	c, err := client.New("127.0.0.1:7070", client.WithToken(os.Getenv("KVHOST_TOKEN")))
//	if err != nil { ... }
//	defer c.Close()
//
// New does not dial: the connection is made by the first call and remade
// after a failure, so a client survives a server restart. The transport is
// plaintext for a loopback address (127.0.0.0/8, ::1, localhost, a unix
// socket) and TLS with the system's roots for any other, unless WithTLS or
// WithInsecure says otherwise. A bearer token set with WithToken travels as
// "authorization: Bearer <token>" metadata on every call.
//
// # Reading and writing
//
//	e, err := c.Put(ctx, "jobs/1", []byte("queued"), client.WithTTL(time.Hour))
//	e, err = c.Put(ctx, "jobs/1", []byte("running"), client.IfVersion(e.Version))
//	for e, err := range c.All(ctx, "jobs/") { ... }
//
// Writes take WriteOptions: WithTTL, IfAbsent, IfVersion. A condition that
// does not hold fails with a *ConflictError carrying the key's current
// version, so a compare-and-set loop can retry without another read.
//
// # Compare-and-swap by value, exists
//
// CompareAndSwap writes a value when the key holds what the caller
// expects, by bytes rather than by version, and answers false, with the
// key as it is, when it does not: a mismatch is an answer, not an error.
// A counter kept as text, with no lost update among any number of writers
// on any backend:
//
//	expect, n := client.ExpectAbsent(), 0
//	for {
//		ok, cur, err := c.CompareAndSwap(ctx, "hits", expect, []byte(strconv.Itoa(n+1)))
//		if err != nil || ok {
//			break
//		}
//		// Another writer came first: go on from what it wrote.
//		expect, n = client.ExpectValue(cur.Value), 0
//		if cur.Version == 0 { // deleted meanwhile
//			expect = client.ExpectAbsent()
//		} else if n, err = strconv.Atoi(string(cur.Value)); err != nil {
//			break
//		}
//	}
//
// Exists answers whether a key is live, with its version and expiry, and
// never moves its value. A Watch with ExactKey follows one key and
// nothing it prefixes.
//
// # Revisions and watches
//
// Every committed change takes one revision from a store-wide counter; an
// entry's Version is the revision of its last value change. List pages
// and Stats say the revision they were read at, and every watch event
// carries its revision, so a watcher can list, then follow, and resume
// after a lost stream without missing or repeating a change:
//
//	page, err := c.List(ctx, "config/")
//	ws, err := c.Watch(ctx, "config/", client.FromRevision(page.Revision+1))
//	for {
//		ev, err := ws.Recv()
//		if errors.Is(err, client.ErrWatchOverflow) { /* watch again from last+1 */ }
//		if errors.Is(err, client.ErrCompacted) { /* too old: list again */ }
//		...
//	}
//
// # Errors
//
// Every error wraps one of the sentinels re-exported here (ErrNotFound,
// ErrConflict, ErrInvalidArgument, ErrTooLarge, ErrPermissionDenied,
// ErrUnauthenticated, ErrUnavailable, ...), whether it was found on the
// client (a bad key is refused before it is sent: a protobuf string cannot
// even carry invalid UTF-8) or came from the server, where the status code
// is turned back into the sentinel by the reason in its status detail and
// the one error table (api/rpcerr). Test
// them with errors.Is and errors.As:
//
//	_, err := c.Get(ctx, "missing")
//	if errors.Is(err, client.ErrNotFound) { ... }
//
//	var conflict *client.ConflictError
//	if errors.As(err, &conflict) { retryAt(conflict.CurrentVersion) }
//
// A server's error keeps the server's message, which names the key and the
// problem; the client does not add its own prefix. ErrUnavailable means
// the server or its backend cannot answer now (retry), a context's error
// means the call's own deadline or cancellation, and ErrClosed a call on a
// closed Client.
//
// # Watching
//
// Watch returns once the server says the subscription is live: every change
// committed after that arrives exactly once, in commit order. A watcher
// that falls behind gets ErrWatchOverflow and should resync (List) and
// watch again.
package client
