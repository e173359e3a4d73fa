package balancer

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	if got.Now == nil {
		t.Fatal("Now not defaulted")
	}
	got.Now = nil
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("zero Config with defaults = %+v\nwant %+v", got, want)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for valid
	}{
		{"zero", Config{}, ""},
		{"rules off", Config{BreakerConsecutiveFailures: -1, BreakerFailureRatio: -1, MaxQueue: -1, Outlier: OutlierConfig{ConsecutiveFailures: -1}}, ""},
		{"ratio above 1", Config{BreakerFailureRatio: 1.5}, "ratio"},
		{"negative window", Config{BreakerWindow: -time.Second}, "window"},
		{"tiny window", Config{BreakerWindow: 5}, "window"},
		{"negative open time", Config{BreakerOpenTime: -1}, "open time"},
		{"negative half-open", Config{BreakerHalfOpenRequests: -1}, "half-open"},
		{"too many half-open", Config{BreakerHalfOpenRequests: 1 << 20}, "half-open"},
		{"negative min requests", Config{BreakerMinRequests: -1}, "min requests"},
		{"negative slow start", Config{SlowStart: -time.Second}, "slow start"},
		{"negative max concurrent", Config{MaxConcurrent: -1}, "max concurrent"},
		{"negative queue timeout", Config{QueueTimeout: -1}, "queue timeout"},
		{"max below base ejection", Config{Outlier: OutlierConfig{BaseEjection: time.Minute, MaxEjection: time.Second}}, "shorter"},
		{"base above default max", Config{Outlier: OutlierConfig{BaseEjection: time.Hour}}, "shorter"},
		{"percent above 100", Config{Outlier: OutlierConfig{MaxEjectedPercent: 101}}, "percent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error about %q", err, tt.want)
			}
			if tt.want != "" {
				if _, err := NewPoolConfig("p", tt.cfg, nil); err == nil {
					t.Fatal("NewPoolConfig accepted an invalid Config")
				}
			}
		})
	}
}
