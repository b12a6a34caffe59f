import FerryCore
import Foundation

/// tus's `Upload-Metadata`: `key base64value,key2 base64value2` (a key may have no value),
/// and how its keys name the destination, as the `X-*` headers of `/upload` do.
struct TusMetadata {
    /// The contract header each destination key stands for.
    static let contractKeys: [String: String] = [
        "container": UploadContract.containerHeader, "path": UploadContract.pathHeader,
        "filename": UploadContract.hostPathHeader, "mode": UploadContract.modeHeader,
        "uid": UploadContract.uidHeader, "gid": UploadContract.gidHeader,
        "create_dirs": UploadContract.createDirsHeader,
    ]

    /// Decoded values by key (nil: a key without a value).
    let values: [String: String?]

    /// Parses the field; an empty one (tuspy always sends it) holds nothing.
    ///
    /// - Throws: the reason the field cannot be read.
    init(_ field: String) throws(APIError) {
        var values: [String: String?] = [:]
        for pair in field.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = pair.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty && field.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let parts = trimmed.split(separator: " ", omittingEmptySubsequences: true)
            guard (1...2).contains(parts.count), !parts[0].isEmpty else {
                throw .badTusHeader("Upload-Metadata must be 'key base64value' pairs separated by commas")
            }
            let key = String(parts[0])
            guard values[key] == nil else { throw .badTusHeader("Upload-Metadata names \(key) twice") }
            guard parts.count == 2 else {
                values[key] = .some(nil)
                continue
            }
            guard let data = Data(base64Encoded: String(parts[1])),
                let text = String(data: data, encoding: .utf8)
            else { throw .badTusHeader("Upload-Metadata \(key) is not base64 of UTF-8 text") }
            values[key] = text
        }
        self.values = values
    }

    /// The values of contract header `name` that the metadata gives.
    func contractValues(_ name: String) -> [String] {
        Self.contractKeys.compactMap { key, header in
            header.caseInsensitiveCompare(name) == .orderedSame ? (values[key] ?? nil).map { [$0] } : nil
        }.flatMap { $0 }
    }
}
