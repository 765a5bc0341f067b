//go:build tools

// Pins helm-unittest (built by hack/helm-unittest/build.sh): `go install` refuses its module
// because of its replace directive, so this module repeats the replace and builds its command.
package tools

import _ "github.com/helm-unittest/helm-unittest/cmd/helm-unittest"
