//go:build cgo

package gonvml_test

import (
	"context"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/llmctl/llmctl/pkg/gpu/gonvml"
)

// TestEnergy reads nvmlDeviceGetTotalEnergyConsumption through go-nvml's
// mock: millijoules where supported, n/a (so the collector integrates
// power instead) where the board does not support it.
func TestEnergy(t *testing.T) {
	dev := func(r nvml.Return) *mock.Device {
		return &mock.Device{
			GetPowerUsageFunc:             func() (uint32, nvml.Return) { return 250_000, nvml.SUCCESS },
			GetTotalEnergyConsumptionFunc: func() (uint64, nvml.Return) { return 123_456_789, r },
		}
	}
	devs := []*mock.Device{dev(nvml.SUCCESS), dev(nvml.ERROR_NOT_SUPPORTED)}
	lib := &mock.Interface{
		InitFunc:           func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:       func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			return devs[i], nvml.SUCCESS
		},
	}
	s := gonvml.New(lib).Probe(context.Background())
	if len(s.Devices) != 2 {
		t.Fatalf("%+v", s)
	}
	if e := s.Devices[0].EnergyMJ; !e.OK || e.Value != 123_456_789 || s.Devices[0].PowerW.Value != 250 {
		t.Errorf("device 0: energy %v power %v", e, s.Devices[0].PowerW)
	}
	if e := s.Devices[1].EnergyMJ; e.OK || e.String() != "n/a (not supported)" {
		t.Errorf("device 1: energy %v, want not supported", e)
	}
}
