// Command kubevirt-release writes the manifests KubeVirt's resource-generator produces for the release
// templates (hack/generate.sh: `--type=kv` and `--type=operator-rbac --namespace='{{.Namespace}}'`),
// calling the same virt-operator functions, copied unchanged from the KubeVirt module at build time.
// KubeVirt's own manifest-templator, built beside it, then renders kubevirt-operator.yaml from them.
//
//	kubevirt-release <generated-manifests-dir>
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"kubevirt.io/kubevirt/tools/util"

	"palette.vmo/lab/kubevirt-release/components"
	"palette.vmo/lab/kubevirt-release/rbac"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubevirt-release <generated-manifests-dir>")
		os.Exit(2)
	}
	dir := os.Args[1]
	kv, err := components.NewKubeVirtCrd()
	if err != nil {
		fail(err)
	}
	write(filepath.Join(dir, "kv-resource.yaml"), kv)
	// The namespace stays a template variable: the templator fills it in.
	write(filepath.Join(dir, "rbac-operator.authorization.k8s.yaml.in"), rbac.GetAllOperator("{{.Namespace}}")...)
}

func write(path string, objects ...interface{}) {
	var out strings.Builder
	for _, obj := range objects {
		if err := util.MarshallObject(obj, &out); err != nil {
			fail(err)
		}
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
