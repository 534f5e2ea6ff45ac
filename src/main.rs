fn main() -> std::process::ExitCode {
    xdptcp::cli::main()
}
