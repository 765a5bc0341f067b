//go:build tools

// Pins ghz (built by hack/ghz/build.sh): the gRPC load generator bench/serving drives mlkube's
// and MLServer's Open Inference Protocol gRPC servers with, as wrk drives their HTTP.
package tools

import _ "github.com/bojand/ghz/cmd/ghz"
