import Foundation
import PackagePlugin

/// Builds the web console into the binary: every file under the target's `assets/` folder
/// becomes bytes in a generated Swift file, so `ferry` serves `/ui/` with nothing beside
/// it on disk and nothing fetched at run time.
@main
struct EmbedConsoleAssets: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let assets = target.directoryURL.appending(path: "assets")
        let names = try FileManager.default.contentsOfDirectory(atPath: assets.path())
            .filter { !$0.hasPrefix(".") }.sorted()
        let inputs = names.map { assets.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedAssets.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(names.count) console files",
                executable: try context.tool(named: "EmbedAssets").url,
                arguments: [output.path()] + inputs.map { $0.path() },
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
