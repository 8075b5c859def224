// Package serve is the gateway: the OpenAI-compatible HTTP API, the router
// over backends (remote OpenAI-compatible servers and the embedded engine),
// and the request's one-way path through auth, limits, ledger and metrics.
//
// serve owns the small interfaces it consumes (Authenticator, Admitter,
// Reserver, Backend); pkg/billing and the engine implement them.
package serve
