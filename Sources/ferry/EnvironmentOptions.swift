import ArgumentParser

/// `FERRY_*` environment variables as command-line options: the one mapping is
/// `--max-body-size` ⇄ `FERRY_MAX_BODY_SIZE`, for every option the command declares.
///
/// The options are read off the command itself (ArgumentParser names `maxBodySize` as
/// `--max-body-size`), so a new flag is settable from the environment without a table to
/// keep in step.
enum EnvironmentOptions {
    /// One declared option.
    struct Declared {
        var name: String
        var isFlag: Bool
        var isRepeatable: Bool
        var environmentName: String { "FERRY_" + name.uppercased().replacingDashes(with: "_") }
    }

    /// Every option and flag of `command`.
    static func declared(by command: some ParsableArguments) -> [Declared] {
        Mirror(reflecting: command).children.compactMap { child in
            guard let label = child.label, label.hasPrefix("_") else { return nil }
            let kind = String(describing: type(of: child.value))
            guard kind.hasPrefix("Option<") || kind.hasPrefix("Flag<") else { return nil }
            return Declared(
                name: kebabCase(String(label.dropFirst())), isFlag: kind.hasPrefix("Flag<"),
                isRepeatable: kind.hasPrefix("Option<Array<"))
        }
    }

    /// `arguments` with options taken from `environment` added where the command line does
    /// not give them (the command line wins).
    ///
    /// - Parameter invertible: flags with a `--no-` form, which `false` selects; other
    ///   flags are off unless given.
    static func merge(
        _ arguments: [String], environment: [String: String], declared: [Declared], invertible: Set<String>
    ) throws -> [String] {
        var merged = arguments
        for option in declared {
            guard let value = environment[option.environmentName] else { continue }
            let given = arguments.contains { argument in
                argument == "--\(option.name)" || argument.hasPrefix("--\(option.name)=")
                    || argument == "--no-\(option.name)"
            }
            if given { continue }
            if option.isFlag {
                switch value.lowercased() {
                case "1", "true", "yes", "on": merged.append("--\(option.name)")
                case "0", "false", "no", "off":
                    if invertible.contains(option.name) { merged.append("--no-\(option.name)") }
                default:
                    throw ValidationError("\(option.environmentName) must be true or false, not '\(value)'")
                }
            } else if option.isRepeatable {
                for item in value.split(whereSeparator: { $0 == "," || $0 == " " }) {
                    merged += ["--\(option.name)", String(item)]
                }
            } else {
                merged.append("--\(option.name)=\(value)")
            }
        }
        return merged
    }

    private static func kebabCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "-" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension String {
    fileprivate func replacingDashes(with replacement: String) -> String {
        split(separator: "-", omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
