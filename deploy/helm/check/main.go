// Command check decodes rendered chart manifests (helm template output on stdin) strictly into the Kubernetes API
// types, plus KEDA's and prometheus-operator's, so that misspelt or misplaced fields and wrong value types fail
// without a cluster. Anything else that is not a known type is listed as skipped.
//
//	helm template demo deploy/helm/mailstream --kube-version 1.30.0 | (cd deploy/helm/check && go run .)
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

func init() {
	// The optional custom resources the chart renders: KEDA scaling and the prometheus-operator ServiceMonitor and
	// PrometheusRule.
	utilruntime.Must(kedav1alpha1.AddToScheme(scheme.Scheme))
	utilruntime.Must(monitoringv1.AddToScheme(scheme.Scheme))
}

func main() {
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	failed, checked := false, 0
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(1)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			fmt.Println("yaml:", err)
			failed = true
			continue
		}
		gvk := schema.FromAPIVersionAndKind(head.APIVersion, head.Kind)
		if !scheme.Scheme.Recognizes(gvk) {
			fmt.Printf("skipped %s %s (%s is not a built-in type)\n", head.Kind, head.Metadata.Name, head.APIVersion)
			continue
		}
		if _, _, err := strict.Decode(doc, nil, nil); err != nil {
			fmt.Printf("INVALID %s %s: %v\n", head.Kind, head.Metadata.Name, err)
			failed = true
			continue
		}
		checked++
		fmt.Printf("ok %s %s\n", head.Kind, head.Metadata.Name)
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("ALL OK (%d objects decoded strictly)\n", checked)
}

func stripComments(doc []byte) []byte {
	var out []string
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n"))
}
