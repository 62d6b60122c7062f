package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure geometry. 8 × 4.5 in at 120 dpi is a 960 × 540 PNG: wide enough for
// a day of samples, small enough to sit in a README, and large enough that
// 10 pt tick labels are 17 px high.
const (
	figWidth  = 8 * vg.Inch
	figHeight = 4.5 * vg.Inch
	pngDPI    = 120
)

// sans is the face used for all text. gonum/plot defaults to a serif face;
// sans-serif reads better at tick-label sizes on screens.
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

// palette is Okabe and Ito's colour-blind-safe set, ordered so the first
// lines differ most, with their yellow left out as unreadable on white. More
// columns than colours repeat the colours with a dash pattern.
var palette = []color.Color{
	color.RGBA{0x00, 0x72, 0xB2, 0xFF}, // blue
	color.RGBA{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	color.RGBA{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	color.RGBA{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	color.RGBA{0xE6, 0x9F, 0x00, 0xFF}, // orange
	color.RGBA{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	color.RGBA{0x00, 0x00, 0x00, 0xFF}, // black
}

// dashes are the patterns used on the second and later passes through the
// palette.
var dashes = [][]vg.Length{
	nil,
	{vg.Points(6), vg.Points(3)},
	{vg.Points(2), vg.Points(2)},
	{vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)},
}

// rightMargin keeps the label of a tick at the right end of the x axis
// inside the figure.
const rightMargin = vg.Length(12)

// substituteSlack widens the legend column beyond the width of its text in
// Liberation Sans; see PlotLines.
const substituteSlack = 1.2

// headroom is the fraction of the value range left above the highest value.
const headroom = 0.04

// gridColor is light enough that the grid guides the eye without competing
// with the data.
var gridColor = color.Gray{Y: 0xE0}

// PlotLines draws the named columns of s against time (column 0, hours) as a
// line chart, with a legend to the right of the plotting area so it never
// covers a line. The format follows the extension of path: ".svg" or ".png".
// ylabel names the y axis, with its unit.
//
// Text is laid out with Liberation Sans metrics. The SVG names that font,
// falling back to the metric-compatible Arial and Helvetica and then any
// sans-serif, rather than embedding it, which would add about 550 KB of
// base64 to every file. A viewer with none of the three draws slightly
// different text widths; the legend column leaves slack for that.
func PlotLines(path string, s *Series, cols []string, ylabel string) error {
	if s == nil || len(s.Columns) < 2 {
		return fmt.Errorf("%w: series has no data columns besides time", ErrNoColumns)
	}
	if len(cols) == 0 {
		return fmt.Errorf("%w: no columns named for plot %s", ErrNoColumns, path)
	}
	idx := make([]int, len(cols))
	for i, name := range cols {
		j := s.Column(name)
		switch {
		case j < 0:
			return fmt.Errorf("%w: %q (series %q has %v)", ErrUnknownColumn, name, s.Title, s.Columns[1:])
		case j == 0:
			return fmt.Errorf("%w: %q is the time axis, not a value", ErrUnknownColumn, name)
		}
		idx[i] = j
	}
	if len(s.Rows) == 0 {
		return fmt.Errorf("%w: series %q", ErrNoRows, s.Title)
	}
	if err := checkFormat(path); err != nil {
		return err
	}

	p := newPlot(s.Title, "time (hours)", ylabel)
	p.X.Tick.Marker = hourTicks{}
	legend := plot.NewLegend()
	styleLegend(&legend)

	allNonNegative := true
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for i, j := range idx {
		xys := make(plotter.XYs, 0, len(s.Rows))
		for _, row := range s.Rows {
			x, y := row[0], row[j]
			// gonum rejects non-finite points; a gap in the data is
			// better than no plot, so skip them.
			if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: y})
			allNonNegative = allNonNegative && y >= 0
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("report: plot %s: column %q: %w", path, cols[i], err)
		}
		line.LineStyle = draw.LineStyle{
			Color:    palette[i%len(palette)],
			Width:    vg.Points(1.5),
			Dashes:   dashes[(i/len(palette))%len(dashes)],
			DashOffs: 0,
		}
		p.Add(line)
		legend.Add(cols[i], line)
	}
	if math.IsInf(ymin, 1) {
		return fmt.Errorf("%w: series %q has no finite values in %v", ErrNoRows, s.Title, cols)
	}
	// Counts and ratios read honestly from zero. Values that stay above
	// half their maximum (or go negative) get their own range instead, or
	// their variation would flatten into a line near the top.
	if allNonNegative && ymin <= ymax/2 {
		p.Y.Min = 0
	} else {
		p.Y.Min = ymin
	}
	// A little headroom so a maximum does not run along the frame.
	p.Y.Max = ymax + headroom*(ymax-p.Y.Min)
	if ymin == ymax {
		// A constant line would sit on the bottom or top edge; give it room.
		pad := math.Max(math.Abs(ymax)*0.1, 1)
		p.Y.Min, p.Y.Max = math.Min(p.Y.Min, ymin-pad), ymax+pad
		if allNonNegative && ymin-pad < 0 {
			p.Y.Min = 0
		}
	}

	return render(path, func(dc draw.Canvas) {
		lr := legend.Rectangle(dc)
		gap := vg.Points(10)
		// The slack keeps legend text inside the figure when an SVG
		// viewer substitutes a wider face, such as DejaVu Sans on
		// Linux systems without Liberation fonts.
		legendWidth := (lr.Max.X-lr.Min.X)*substituteSlack + 2*gap
		plotArea := draw.Crop(dc, 0, -legendWidth, 0, 0)
		p.Draw(plotArea)
		// Align the legend's first entry with the top of the plotting
		// area, below the title.
		top := p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding + gap
		legendArea := draw.Crop(dc, dc.Max.X-dc.Min.X-legendWidth+gap, -gap, 0, -top)
		legend.Draw(legendArea)
	})
}

// PlotHistogram draws h as a bar chart of counts per bin. Values outside the
// edges are reported in the title, since they have no bar.
func PlotHistogram(path string, h *Histogram) error {
	if h == nil {
		return fmt.Errorf("%w: nil histogram", ErrBadHistogram)
	}
	if err := checkEdges(h.Edges); err != nil {
		return err
	}
	if len(h.Counts) != len(h.Edges)-1 {
		return fmt.Errorf("%w: %d counts for %d edges, want %d", ErrBadHistogram, len(h.Counts), len(h.Edges), len(h.Edges)-1)
	}
	if err := checkFormat(path); err != nil {
		return err
	}

	title := h.Title
	var outside []string
	if h.Under > 0 {
		outside = append(outside, fmt.Sprintf("%d below %s", h.Under, FormatFloat(h.Edges[0])))
	}
	if h.Over > 0 {
		outside = append(outside, fmt.Sprintf("%d above %s", h.Over, FormatFloat(h.Edges[len(h.Edges)-1])))
	}
	if len(outside) > 0 {
		title += " (" + strings.Join(outside, ", ") + ")"
	}
	p := newPlot(title, h.XLabel, "count")
	p.X.Tick.Marker = compactTicks{}

	bins := make([]plotter.HistogramBin, len(h.Counts))
	var maxCount uint64
	for i, c := range h.Counts {
		bins[i] = plotter.HistogramBin{Min: h.Edges[i], Max: h.Edges[i+1], Weight: float64(c)}
		maxCount = max(maxCount, c)
	}
	bars := &plotter.Histogram{
		Bins:      bins,
		FillColor: palette[0],
		LineStyle: draw.LineStyle{Color: color.White, Width: vg.Points(0.75)},
	}
	p.Add(bars)
	p.Y.Min = 0
	p.Y.Max = float64(maxCount) * (1 + headroom)
	if maxCount == 0 {
		// An empty histogram still gets a sensible axis.
		p.Y.Max = 1
	}
	return render(path, func(dc draw.Canvas) {
		// Room on the right for the half of the last tick label that
		// hangs past the axis end.
		p.Draw(draw.Crop(dc, 0, -rightMargin, 0, 0))
	})
}

// newPlot returns a plot with Canopy's house style: sans-serif text, a light
// grid behind the data, and compact y tick labels.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(sans, 14)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sans, 12)
		a.Tick.Label.Font = font.From(sans, 10)
		a.Padding = vg.Points(2)
	}
	p.Y.Tick.Marker = compactTicks{}
	grid := plotter.NewGrid()
	grid.Vertical = draw.LineStyle{Color: gridColor, Width: vg.Points(0.5)}
	grid.Horizontal = grid.Vertical
	p.Add(grid)
	return p
}

func styleLegend(l *plot.Legend) {
	l.TextStyle.Font = font.From(sans, 11)
	l.Left = true
	l.Top = true
	l.ThumbnailWidth = vg.Points(24)
	l.Padding = vg.Points(4)
}

// checkFormat rejects paths whose extension render cannot write, before any
// drawing work is done.
func checkFormat(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg", ".png":
		return nil
	}
	return fmt.Errorf("%w: %q (want .svg or .png)", ErrFormat, path)
}

// render draws onto a canvas of the format named by path's extension and
// writes it atomically.
func render(path string, drawFn func(draw.Canvas)) error {
	var c vg.CanvasWriterTo
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		c = vgsvg.New(figWidth, figHeight)
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(figWidth, figHeight), vgimg.UseDPI(pngDPI))}
	default:
		return checkFormat(path)
	}
	dc := draw.New(c)
	// gonum fills only the plot's own rectangle; paint the whole figure so
	// the legend column is not transparent in SVG viewers with dark themes.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	drawFn(dc)
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("report: render %s: %w", path, err)
	}
	out := buf.Bytes()
	if _, ok := c.(*vgsvg.Canvas); ok {
		// vgsvg names the font family without a fallback, and a viewer
		// lacking Liberation Sans then falls back to its default, often
		// a serif. Arial and Helvetica share Liberation Sans's metrics,
		// so text laid out for it still fits.
		// Matching the opening of the attribute cannot touch user text,
		// in which vgsvg escapes the quote.
		out = bytes.ReplaceAll(out, []byte(`style="font-family:Liberation Sans;`),
			[]byte(`style="font-family:'Liberation Sans',Arial,Helvetica,sans-serif;`))
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(out)
		return err
	})
}
