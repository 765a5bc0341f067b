//go:build tools

// Pins actionlint (built by hack/actionlint/build.sh) so the example GitHub Actions workflows
// users copy (examples/ci/github-actions) are checked by the real linter.
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
