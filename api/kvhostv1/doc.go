// Package kvhostv1 holds the generated code of kvhost's public gRPC API
// (kvhost.proto beside it). Applications in Go use package client instead;
// this package is for the server and for readers of the wire.
package kvhostv1
