// Package browsertest starts a headless Chromium for the tests that drive the dashboard, and
// keeps their screenshots.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BrowserEnv names the Chromium the tests drive, when it is not on the PATH.
const BrowserEnv = "ZASYNC_CHROMIUM"

// ArtifactsEnv names a folder where the tests leave their screenshots, in dashboard/.
const ArtifactsEnv = "ZASYNC_ARTIFACTS"

// Start starts a headless Chromium for the test, closed when it ends, and returns a context
// for its steps (with a deadline of timeout); it skips the test when there is no Chromium.
func Start(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path := os.Getenv(BrowserEnv)
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		t.Skipf("no Chromium to drive: install Debian's chromium package (.ci/run does) or set %s", BrowserEnv)
	}
	// The flags keep Chromium from reaching for the network, which this machine closes.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser, which lives as long as its context: no deadline on
	// that one; the test's steps get one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

// Screenshot saves the page as name.png in $ZASYNC_ARTIFACTS/dashboard, else in a folder of
// the test's own.
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv(ArtifactsEnv); a != "" {
		dir = filepath.Join(a, "dashboard")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (lower is JPEG)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ClickAndConfirm clicks the element sel selects, then the dashboard's Confirm button, and
// returns what the page says the action did.
func ClickAndConfirm(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	// The click is made in the page, on the element the selector finds then: a page that
	// redraws itself (every two seconds) may have replaced the one a node id would name.
	click := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); if (!e) throw new Error("no element"); e.click(); })()`
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("flash").hidden = true; undefined`),
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](click),
		chromedp.WaitVisible(chromedp.CSS("#confirm-yes")),
		chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitNotVisible(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	); err != nil {
		t.Fatalf("click %s and confirm: %v", sel, err)
	}
	said, err := Text(ctx, "#flash")
	if err != nil {
		t.Fatal(err)
	}
	return said
}

// Text returns the text of the element sel selects once there is one with text, read in the
// page in one step: a page that redraws itself may replace the element between a lookup and
// a read by node id.
func Text(ctx context.Context, sel string) (string, error) {
	js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); return e ? e.innerText : ""; })()`
	return chromedp.Run(ctx, chromedp.Poll[string](js))
}
