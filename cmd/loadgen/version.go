package main

import (
	"debug/buildinfo"
	"runtime/debug"
)

// revision is the commit a Go binary was built from, from the build
// information `go build` stamps in a Git checkout: the first 12 hex
// digits, "+modified" when the tree had uncommitted changes; "unknown"
// without it.
func revision(info *debug.BuildInfo) string {
	if info == nil {
		return "unknown"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev[:min(12, len(rev))] + modified
}

// commit is this build's commit when the linker sets it
// (-ldflags "-X main.commit=…", as scripts/loadtest.sh does): Go stamps
// none in a Git worktree or with -buildvcs=false.
var commit string

// selfRevision is this binary's commit.
func selfRevision() string {
	info, _ := debug.ReadBuildInfo()
	if r := revision(info); r != "unknown" || commit == "" {
		return r
	}
	return commit
}

// fileRevision is the commit of the Go binary at path.
func fileRevision(path string) string {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return revision(info)
}
