import Foundation

extension DaemonConfiguration {
    /// Where the demo (no `--config`) keeps its store, the simulator's state file and its pty link:
    /// `$XDG_STATE_HOME/apheresisd-demo`, else `$HOME/.local/state/apheresisd-demo` (the XDG base
    /// directory rule: a relative XDG_STATE_HOME is ignored). Per user, never the working directory,
    /// so that `make demo` leaves nothing in the repository.
    public static func demoStateDirectory(environment: [String: String]) -> String {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            return PathText.join(state, demoStateDirectoryName)
        }
        let home = environment["HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? NSHomeDirectory()
        return PathText.join(PathText.join(home, ".local/state"), demoStateDirectoryName)
    }

    public static let demoStateDirectoryName = "apheresisd-demo"

    /// The demo's configuration with its state in the per-user directory above.
    public static func demo(environment: [String: String], simulatorScenario: String) -> DaemonConfiguration {
        var configuration = demo(workingDirectory: "/", simulatorScenario: simulatorScenario)
        configuration.stateDirectory = demoStateDirectory(environment: environment)
        configuration.databasePath = PathText.join(configuration.stateDirectory, defaultDatabaseName)
        return configuration
    }
}
