//go:build tools

// Pins the helm CLI (built by hack/helm/build.sh) so chart tests render the real chart.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
