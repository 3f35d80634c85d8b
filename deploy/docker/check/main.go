// Command check validates deploy/docker/Dockerfile without a Docker engine or network: BuildKit's own parser,
// linter and LLB conversion for each SERVICE (base images answered offline), and the build context that
// Dockerfile.dockerignore leaves, checked against every COPY source and for things it must not send.
//
//	cd deploy/docker/check && go run . ../../..        (LIST=1 also prints the context's files)
package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: check <repository root>")
		os.Exit(2)
	}
	root := os.Args[1]
	dt, err := os.ReadFile(filepath.Join(root, "deploy/docker/Dockerfile"))
	must(err)
	ctx := context.Background()
	failed := false
	for _, service := range []string{"ingest", "inbox", "automation", "domains", "sender"} {
		opt := dockerfile2llb.ConvertOpt{Config: dockerui.Config{BuildArgs: map[string]string{"SERVICE": service}}, SourceMap: sourceMap(ctx, dt), MetaResolver: offlineResolver{}}
		res, err := dockerfile2llb.DockerfileLint(ctx, dt, opt)
		must(err)
		for _, w := range res.Warnings {
			fmt.Printf("%s: lint warning %s: %s\n", service, w.RuleName, w.Detail)
			failed = true
		}
		if res.Error != nil {
			fmt.Printf("%s: lint error: %s\n", service, res.Error.Message)
			failed = true
		}
		opt.Warn = func(rule, desc, url, msg string, loc []parser.Range) {
			fmt.Printf("%s: warn %s %s\n", service, rule, msg)
		}
		st, img, _, _, err := dockerfile2llb.Dockerfile2LLB(ctx, dt, opt)
		if err != nil {
			fmt.Printf("%s: LLB conversion failed: %v\n", service, err)
			failed = true
			continue
		}
		def, err := st.Marshal(ctx)
		must(err)
		fmt.Printf("%s: LLB ok (%d ops), user=%q entrypoint=%v healthcheck=%v env=%v\n", service, len(def.Def), img.Config.User, img.Config.Entrypoint, img.Config.Healthcheck.Test, img.Config.Env)
	}

	// The build context after the Dockerfile-specific ignore file.
	f, err := os.Open(filepath.Join(root, "deploy/docker/Dockerfile.dockerignore"))
	must(err)
	patterns, err := ignorefile.ReadAll(f)
	must(err)
	pm, err := patternmatcher.New(patterns)
	must(err)
	var included []string
	must(filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		must(err)
		rel, _ := filepath.Rel(root, path)
		if rel == "." || d.IsDir() {
			return nil
		}
		skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		must(err)
		if !skip {
			included = append(included, rel)
		}
		return nil
	}))
	fmt.Printf("context: %d files\n", len(included))
	if os.Getenv("LIST") != "" {
		for _, p := range included {
			fmt.Println("  ", p)
		}
	}
	has := func(prefix string) bool {
		for _, p := range included {
			if p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
				return true
			}
		}
		return false
	}
	sources := []string{"uv.lock", "pyproject.toml", "libs/common/pyproject.toml", "libs/common/src", "deploy/docker/entrypoint.sh", "deploy/docker/healthcheck.py"}
	for _, s := range []string{"ingest", "inbox", "automation", "domains", "sender"} {
		sources = append(sources, "services/"+s+"/pyproject.toml", "services/"+s+"/src")
	}
	for _, s := range sources {
		if !has(s) {
			fmt.Printf("context lacks COPY source %s\n", s)
			failed = true
		}
	}
	for _, p := range included {
		if strings.Contains(p, "__pycache__") || strings.HasPrefix(p, ".venv/") || strings.HasPrefix(p, ".git/") || strings.HasPrefix(p, "tests/") {
			fmt.Printf("context holds what it should not: %s\n", p)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
	fmt.Println("ALL OK")
}

// offlineResolver answers every base image with a python-slim-like config, so nothing is fetched.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin","LANG=C.UTF-8"]},"rootfs":{"type":"layers","diff_ids":[]}}`
	return ref, digest.FromString(ref), []byte(cfg), nil
}

func sourceMap(ctx context.Context, dt []byte) *llb.SourceMap {
	st := llb.Scratch()
	def, err := st.Marshal(ctx)
	must(err)
	sm := llb.NewSourceMap(&st, "Dockerfile", "Dockerfile", dt)
	sm.Definition = def
	return sm
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
