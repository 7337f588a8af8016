package api

import (
	"context"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/authzed/authzed-go/pkg/requestmeta"
	"github.com/authzed/authzed-go/pkg/responsemeta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// VersionInfo says which kengen this is and which Authzed API it serves.
type VersionInfo struct {
	// Kengen is the version of the module the binary was built from: a release tag, or for a
	// build from a checkout the pseudo-version Go stamps from its commit (with +dirty when the
	// tree had changes); "(devel)" when the build carries no version at all.
	Kengen string `json:"kengen"`
	// Commit is the VCS revision the binary was built from, when Go stamped one.
	Commit string `json:"commit,omitempty"`
	// AuthzedAPI is the version of github.com/authzed/authzed-go, whose generated code defines
	// the Authzed v1 API this server speaks.
	AuthzedAPI string `json:"authzed_api"`
	// Go is the toolchain that built the binary.
	Go string `json:"go"`
}

// Version reads the binary's build information once.
var Version = sync.OnceValue(func() VersionInfo {
	v := VersionInfo{Kengen: "(devel)", AuthzedAPI: "unknown", Go: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Version != "" {
		v.Kengen = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v.Commit = s.Value
		}
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/authzed/authzed-go" {
			v.AuthzedAPI = d.Version
		}
	}
	return v
})

// ServerVersion is the value of SpiceDB's server-version response metadata: kengen's own
// version as a semantic version with the build metadata "kengen" (a build from a checkout
// without a version stamp is v0.0.0+kengen.devel). zed compares a version without build
// metadata to SpiceDB's latest release and warns on anything that is not a semantic version
// ("not calling a released version of SpiceDB"); a version with build metadata it reports as
// it is, which is the truth: this is no SpiceDB release.
func ServerVersion() string { return semverOf(Version().Kengen) }

// semverOf is ServerVersion for the module version v.
func semverOf(v string) string {
	if !strings.HasPrefix(v, "v") {
		return "v0.0.0+kengen.devel"
	}
	if strings.Contains(v, "+") {
		return v + ".kengen"
	}
	return v + "+kengen"
}

// sendServerVersion answers a client that asks for the server's version the way SpiceDB does:
// the request carries io.spicedb.requestversion, the response io.spicedb.debug.version, in
// the headers (where older zed releases and kengen's own client look) and the trailers (where
// SpiceDB sends it now); zed accepts both when they agree.
func sendServerVersion(ctx context.Context) {
	if !wantsVersion(ctx) {
		return
	}
	md := metadata.Pairs(string(responsemeta.ServerVersion), ServerVersion())
	_ = grpc.SetHeader(ctx, md)
	_ = grpc.SetTrailer(ctx, md)
}

func wantsVersion(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(string(requestmeta.RequestServerVersion))) > 0
}
