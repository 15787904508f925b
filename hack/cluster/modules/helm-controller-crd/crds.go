// Package crds keeps helm-controller's API packages in this module's build list, so that controller-gen
// (hack/cluster/flux.sh) can generate the HelmRelease CRD from them. Nothing builds this package.
package crds

import (
	_ "github.com/fluxcd/helm-controller/api/v2"
	_ "github.com/fluxcd/helm-controller/api/v2beta1"
	_ "github.com/fluxcd/helm-controller/api/v2beta2"
)
