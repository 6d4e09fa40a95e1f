// mimalloc instead of glibc's allocator: a controller tick over 100,000
// workloads makes and drops millions of small allocations (rows, decisions,
// COPY buffers), and glibc's arenas held on to the freed memory (tick bench
// peak 1,520 MiB resident, 1,080 with mimalloc) and spent about a fifth of
// the process's CPU in malloc, free and consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its option enum's 16th entry, which
/// the Rust bindings do not name; version pinned by Cargo.lock).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// That option's default in the bundled mimalloc (`src/options.c`; the
/// header's comment says 10), checked before setting it, so that a
/// renumbered enum changes nothing instead of another option.
const PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1000;
/// How long freed memory stays with the process, ms (arenas, where mimalloc
/// keeps nearly everything, wait this times `arena_purge_mult`, 1): 10
/// minutes, past the allocation job's 5-minute period.
const PURGE_DELAY_MS: std::ffi::c_long = 600_000;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    headroom_server::cli::main()
}

/// Keeps freed memory for the next allocation tick instead of returning it to
/// the system at once: a tick over 100,000 workloads frees about a gigabyte
/// and needs as much again 5 minutes later, and taking it back from the
/// system cost a third of the tick's CPU in page faults (the kernel zeroing
/// every fresh page). Resident memory stays near the tick's peak in between,
/// which the machine must have for each tick anyway. `MIMALLOC_PURGE_DELAY`
/// in the environment, mimalloc's own setting, wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reads and sets an option of the allocator in use; mimalloc
    // reads it again whenever it schedules a purge.
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}
