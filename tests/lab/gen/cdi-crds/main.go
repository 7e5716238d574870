// Command cdi-crds prints, as a YAML stream, the CustomResourceDefinitions that CDI's operator
// installs, exactly as CDI's own controller-gen output embeds them at the pinned CDI version.
package main

import (
	"fmt"
	"sort"
	"strings"

	"palette.vmo/lab/cdi-crds/resources"
)

func main() {
	names := make([]string, 0, len(resources.CDICRDs))
	for name := range resources.CDICRDs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("---\n%s\n", strings.TrimSpace(resources.CDICRDs[name]))
	}
}
