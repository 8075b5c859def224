package serve

import "errors"

// ErrRetryable marks a backend failure that happened before anything was
// sent to the client (connect error, 5xx, 429): another backend may be tried.
var ErrRetryable = errors.New("retryable backend error")
