module ferry-bench

go 1.19
