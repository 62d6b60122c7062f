package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/node"
)

// TestUploadsView: while a download runs, the sharer's uploads show it
// with its bytes moving and how it is reached, over the API and its event
// stream; once the download is done, nothing is left.
func TestUploadsView(t *testing.T) {
	data := randomFile(4<<20, 7)
	// The downloader takes 1 MB/s, so the upload lasts about 4 s.
	n := startJobNet(t, []map[string][]byte{{"slow.bin": data}}, func(c *node.Config) { c.DownLimit = 1e6 })
	src := n.sources[0]
	id := idOf(t, data)
	ctx := context.Background()
	d, err := n.client().Enqueue(ctx, api.DownloadRequest{ID: id.String(), Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}

	var u api.Uploads
	testwait.Until(t, 30*time.Second, func() bool {
		u, err = src.Uploads()
		return err == nil && len(u.Active) == 1 && u.Active[0].Sent > 0
	}, "the sharer never showed the upload moving: %+v %v", u, err)
	a := u.Active[0]
	// Its event stream (the downloader's, here: the sources serve no API)
	// sends the uploads at once.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var first api.Uploads
	err = n.client().FollowUploads(fctx, func(v api.Uploads) bool { first = v; return false })
	cancel()
	if err != nil || first.Slots != u.Slots || first.Active == nil {
		t.Errorf("the uploads stream sent %+v %v", first, err)
	}
	if a.Peer != n.dl.ID().String() || a.Content != id.String() || a.Name != "slow.bin" || a.Size != int64(len(data)) ||
		a.Path != "direct" || a.Local == "" || a.Remote == "" || a.Started.IsZero() {
		t.Errorf("upload %+v, want slow.bin to the downloader, direct", a)
	}
	if u.Slots <= 0 || u.PerPeer <= 0 || len(u.Queue) != 0 {
		t.Errorf("uploads %+v", u)
	}
	// The sent bytes go up while it runs: the next second shows more.
	testwait.Until(t, 10*time.Second, func() bool {
		v, err := src.Uploads()
		return err == nil && (len(v.Active) == 0 || v.Active[0].Sent > a.Sent)
	}, "the upload's bytes did not move")

	waitJob(t, n.dl.Downloads(), d.ID, 60*time.Second, "done", isDone)
	testwait.Until(t, 20*time.Second, func() bool {
		u, err = src.Uploads()
		return err == nil && len(u.Active) == 0 && u.UploadedDirect >= int64(len(data))
	}, "after the download the sharer shows %+v %v", u, err)
}

// TestUploadsAPI: GET /v1/uploads answers with the node's slots (nothing
// running on a fresh node), behind the token.
func TestUploadsAPI(t *testing.T) {
	n := startJobNet(t, nil, nil)
	c := n.client()
	ctx := context.Background()
	u, err := c.Uploads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Slots <= 0 || u.MaxQueue <= 0 || u.Active == nil || u.Queue == nil || len(u.Active)+len(u.Queue) != 0 {
		t.Errorf("a fresh node's uploads: %+v", u)
	}
	if _, err := api.NewClient(n.dl.APIAddr(), "").Uploads(ctx); err == nil {
		t.Error("uploads without the token answered")
	}
}
