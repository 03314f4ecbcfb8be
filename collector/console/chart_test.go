package console

import (
	"regexp"
	"strconv"
	"testing"
)

// TestThresholdLabel: the threshold's label is above the plot, where no bar reaches,
// and inside the chart, wherever the line is.
func TestThresholdLabel(t *testing.T) {
	labels, full := make([]string, 32), make([]int, 32)
	for i := range labels {
		labels[i], full[i] = strconv.Itoa(i), 7
	}
	label := regexp.MustCompile(`<text class="threshold-label" x="([0-9.]+)" y="([0-9.]+)" text-anchor="(start|end)">`)
	barTop := regexp.MustCompile(`<rect class="bar" x="[0-9.]+" y="([0-9.]+)"`)
	for _, tc := range []struct {
		threshold int
		anchor    string
	}{{0, "start"}, {10, "start"}, {16, "start"}, {25, "end"}, {32, "end"}} {
		svg := string(barChart("hist", "t", labels, full, tc.threshold, "payment threshold"))
		m := label.FindStringSubmatch(svg)
		if m == nil {
			t.Fatalf("threshold %d: no label in %s", tc.threshold, svg)
		}
		x, _ := strconv.ParseFloat(m[1], 64)
		y, _ := strconv.ParseFloat(m[2], 64)
		if m[3] != tc.anchor || x < padL || x > chartW-padR {
			t.Errorf("threshold %d: label at x %g anchored %s", tc.threshold, x, m[3])
		}
		for _, b := range barTop.FindAllStringSubmatch(svg, -1) {
			if top, _ := strconv.ParseFloat(b[1], 64); top <= y+4 { // 4: below the baseline
				t.Errorf("threshold %d: a bar's top %g reaches the label's baseline %g", tc.threshold, top, y)
			}
		}
	}
}
