package containerd

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/testsuite"
	ocicas "github.com/ocicas/ocicas/bindings/go"
)

// TestContentSuite runs containerd's own content store suite against a Store, each case on a
// fresh layout that must still pass fsck when the case ends.
func TestContentSuite(t *testing.T) {
	testsuite.ContentSuite(t, "ocicas", func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		engine, err := ocicas.Open(filepath.Join(root, "layout"), &ocicas.OpenOptions{Create: true})
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup := func() error {
			defer engine.Close()
			report, err := engine.Fsck()
			if err != nil {
				return err
			}
			if !report.Sound {
				return fmt.Errorf("the layout fails fsck: %s", strings.Join(report.Problems, "; "))
			}
			return nil
		}
		return ctx, NewStore(engine), cleanup, nil
	})
}
