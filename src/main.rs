//! The `libchat` command-line tool: the demo, a file-based two-terminal chat, schema tools and
//! legacy import. Run `libchat --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
