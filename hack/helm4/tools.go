//go:build tools

// Pins the Helm 4 CLI (built by hack/helm4/build.sh): its --wait computes kstatus, so tests
// check that `helm install --wait` ends when mlkube objects are Ready and fails when they fail.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
