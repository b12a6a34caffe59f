import Foundation
import Glibc

/// Takes over a spool written by Ferry 0.6 and earlier, whose task records lived in the
/// spool itself: the `user.ferry.record` attribute of `ID.data` while a task held bytes,
/// `ID.json` otherwise (and when a record was too large for an attribute).
///
/// Every readable record becomes a row, in one durable transaction, before any old file
/// is touched; then the record files and attributes go. A crash in between runs the
/// adoption again at the next start, and rows already adopted are kept as they are. The
/// bytes stay where they are: the data files keep their names.
struct RoundOneSpool {
    static let recordSuffix = ".json"
    static let recordAttribute = "user.ferry.record"
    /// The setting that says the spool's own records were adopted once.
    static let adoptedSetting = "round1_spool_adopted"

    /// What ``adopt(into:)`` did.
    struct Adoption {
        /// Records that became rows.
        var adopted = 0
        /// Record files that could not be read: left in place for a person to look at.
        var unreadable: [String] = []
    }

    let directory: String

    /// Adopts the records in `directory`, if any are left.
    func adopt(into store: SQLiteTaskStore) throws -> Adoption {
        let names = try Posix.listDirectory(directory)
        let recordFiles = names.filter { $0.hasSuffix(Self.recordSuffix) }
        let adoptedBefore = try store.setting(Self.adoptedSetting) != nil
        // Attributes are read once: after the first adoption no data file carries one.
        let dataIDs =
            adoptedBefore
            ? [] : names.filter { $0.hasSuffix(Spool.dataSuffix) }.map { String($0.dropLast(5)) }
        guard !recordFiles.isEmpty || !dataIDs.isEmpty || !adoptedBefore else { return Adoption() }

        var adoption = Adoption()
        let decoder = JSONDecoder()
        var records: [String: TaskRecord] = [:]
        var attributed: [String] = []
        for id in dataIDs {
            guard let bytes = Posix.attribute(dataPath(id), Self.recordAttribute) else { continue }
            attributed.append(id)
            if let record = try? decoder.decode(TaskRecord.self, from: Data(bytes)), record.id == id {
                records[id] = record
            }
        }
        var readFiles: [String] = []
        for name in recordFiles {
            let id = String(name.dropLast(Self.recordSuffix.count))
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(name)"),
                let record = try? decoder.decode(TaskRecord.self, from: data), record.id == id
            else {
                adoption.unreadable.append(id)
                continue
            }
            readFiles.append(name)
            // The attribute was written last when both exist (round 1 wrote the file only
            // once a record no longer fitted, and removed the attribute then).
            if records[id] == nil { records[id] = record }
        }
        let ordered = records.values.sorted { $0.sequence < $1.sequence }
        try store.adopt(ordered, marking: Self.adoptedSetting)
        adoption.adopted = ordered.count
        for name in readFiles { try Posix.unlink("\(directory)/\(name)") }
        for id in attributed { try? Posix.removeAttribute(dataPath(id), Self.recordAttribute) }
        return adoption
    }

    private func dataPath(_ id: String) -> String {
        "\(directory)/\(id)\(Spool.dataSuffix)"
    }
}
