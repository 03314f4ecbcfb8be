package console

import (
	"fmt"
	"html/template"
	"strings"
)

// Chart geometry, in SVG user units. The band above the plot (padT) holds the
// threshold's label, so that no bar ever runs under it.
const (
	chartW, chartH = 640, 230
	shortH         = 140 // a chart of a few counts (the rejected records)
	padL, padB     = 44, 28
	padT, padR     = 24, 8
	labelY         = padT - 8 // the threshold label's baseline, above the tallest bar
)

// barChart draws values as bars, one per label, with a y axis from 0 to the largest
// value; every bar has class "bar" and a <title> with its label and value. threshold,
// when at least 0, draws a dashed line at the left edge of bar threshold, named by
// thresholdName, whose label sits above the plot, beside the line's top (before it when
// the line is in the right half). The chart is an image whose name is title.
func barChart(id, title string, labels []string, values []int, threshold int, thresholdName string) template.HTML {
	return barChartHigh(id, title, labels, values, threshold, thresholdName, chartH)
}

// barChartHigh is barChart, height units high.
func barChartHigh(id, title string, labels []string, values []int, threshold int, thresholdName string, height int) template.HTML {
	esc := template.HTMLEscapeString
	top := 1
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" id="%s" role="img" aria-labelledby="%s-title" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		esc(id), esc(id), chartW, height, chartW, height)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, esc(id), esc(title))
	plotW, plotH := float64(chartW-padL-padR), float64(height-padT-padB)
	x0, y0 := float64(padL), float64(height-padB)
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, x0, y0, x0+plotW, y0)
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, x0, y0, x0, y0-plotH)
	fmt.Fprintf(&b, `<text class="tick" x="%g" y="%g" text-anchor="end">0</text>`, x0-4, y0+4)
	fmt.Fprintf(&b, `<text class="tick" x="%g" y="%g" text-anchor="end">%d</text>`, x0-4, y0-plotH+4, top)
	n := len(values)
	if n == 0 {
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	}
	slot := plotW / float64(n)
	for i, v := range values {
		h := plotH * float64(v) / float64(top)
		x := x0 + float64(i)*slot
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" data-value="%d"><title>%s: %d</title></rect>`,
			x+slot*0.1, y0-h, slot*0.8, h, v, esc(labels[i]), v)
		if n <= 12 || i%max(1, n/8) == 0 || i == n-1 {
			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%g" text-anchor="middle">%s</text>`, x+slot/2, y0+16, esc(labels[i]))
		}
	}
	if threshold >= 0 && threshold <= n {
		x := x0 + float64(threshold)*slot
		fmt.Fprintf(&b, `<line class="threshold" x1="%.1f" y1="%g" x2="%.1f" y2="%d"/>`, x, y0, x, labelY+4)
		anchor, dx := "start", 4.0
		if x > x0+plotW/2 {
			anchor, dx = "end", -4
		}
		fmt.Fprintf(&b, `<text class="threshold-label" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x+dx, labelY, anchor, esc(thresholdName))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// dayLabels returns "1".."n".
func dayLabels(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i + 1)
	}
	return out
}

// histogram counts the devices by active days, 0..days.
func histogram(activeDays []int, days int) []int {
	out := make([]int, days+1)
	for _, a := range activeDays {
		out[min(max(a, 0), days)]++
	}
	return out
}
