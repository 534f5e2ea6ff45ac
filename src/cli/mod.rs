//! The `xdptcp` command line. TODO(cli)

pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
