package signals

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkZZBig(b *testing.B) {
	ds := dates(2026, 10)
	rng := rand.New(rand.NewPCG(1, 1))
	devs := honest(rng, 0, 100000, ds, roundRobin)
	for i := range devs {
		for len(devs[i].Days) < 31 {
			devs[i] = honest(rng, i, 1, ds, roundRobin)[0]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		Analyze(devs, DefaultThresholds())
	}
}
