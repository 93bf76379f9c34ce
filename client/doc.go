// Package client is the Go client of a kvhost server: the public gRPC API
// (package kvhost.v1) behind ordinary Go methods that take a context first
// and return the domain types of package pluginapi.
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
// # Errors
//
// Every error wraps one of the sentinels re-exported here (ErrNotFound,
// ErrConflict, ErrInvalidArgument, ErrTooLarge, ErrPermissionDenied,
// ErrUnauthenticated, ErrUnavailable, ...), whether it was found on the
// client (a bad key is refused before it is sent: a protobuf string cannot
// even carry invalid UTF-8) or came from the server, where the status code
// is turned back into the sentinel by pluginapi's one error table. Test
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
