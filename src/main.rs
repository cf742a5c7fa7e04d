fn main() -> std::process::ExitCode {
    jumpgate::cli::main()
}
