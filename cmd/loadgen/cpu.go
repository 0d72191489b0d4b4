package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is the CPU time per request of a phase: of the server serving
// the target, of the simulator behind it, and of the load generator
// itself, which shares the machine's cores with them.
type cpuUse struct{ server, simulator, loadgen time.Duration }

// String is "server + simulator + load generator", in µs.
func (c cpuUse) String() string {
	return fmt.Sprintf("%d + %d + %d", c.server.Microseconds(), c.simulator.Microseconds(), c.loadgen.Microseconds())
}

// add adds u's share of one of n rounds.
func (c cpuUse) add(u cpuUse, n int) cpuUse {
	d := time.Duration(n)
	return cpuUse{c.server + u.server/d, c.simulator + u.simulator/d, c.loadgen + u.loadgen/d}
}

// cpuMeter starts measuring the CPU time s, the simulator and this
// process use; the function it returns ends the measure over n requests.
func (c *cluster) cpuMeter(s *server) func(n int) cpuUse {
	s0, sim0, self0 := s.cpu(), c.sim.cpu(), selfCPU()
	return func(n int) cpuUse {
		if n == 0 {
			return cpuUse{}
		}
		d := time.Duration(n)
		u := cpuUse{simulator: (c.sim.cpu() - sim0) / d, loadgen: (selfCPU() - self0) / d}
		if s != c.sim {
			u.server = (s.cpu() - s0) / d
		}
		return u
	}
}

// cpu is the CPU time the process has used so far (user and system).
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// the command may hold spaces: the fields start after its ")"
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// selfCPU is the CPU time this process (the load generator, all its
// threads) has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
