// mimalloc instead of glibc's allocator: a controller tick over 100,000
// workloads makes and drops millions of small allocations (rows, decisions,
// COPY buffers), and glibc's arenas held on to the freed memory (tick bench
// peak 1,520 MiB resident, 1,080 with mimalloc) and spent about a fifth of
// the process's CPU in malloc, free and consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    headroom_server::cli::main()
}
