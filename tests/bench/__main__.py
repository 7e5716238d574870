"""`make bench`: every benchmark, then docs/benchmarks.md.  Extra arguments go to the VM benchmark."""

import sys

from . import bench_cluster, bench_maas, bench_migration, bench_snapshot, bench_vms, report

bench_vms.main(sys.argv[1:])
bench_maas.main([])
bench_cluster.main([])
bench_migration.main([])
bench_snapshot.main([])
report.main()
