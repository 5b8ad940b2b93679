package gemm

// Probes for MeasurePeak (clock_amd64.s).

func clockChain(n int)

func fmaThroughput(n int)
