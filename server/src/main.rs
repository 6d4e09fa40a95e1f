fn main() -> std::process::ExitCode {
    headroom_server::cli::main()
}
