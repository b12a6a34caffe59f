/// Parses sizes such as `512`, `64K`, `10M`, `2G` (binary multiples) into bytes.
public enum ByteCount {
    public static func parse(_ text: String) -> UInt64? {
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = text.trimmingCharacters(in: " ")
        var multiplier: UInt64 = 1
        if digits.uppercased().hasSuffix("IB") { digits = String(digits.dropLast(2)) }
        if digits.uppercased().hasSuffix("B") && digits.count > 1 { digits = String(digits.dropLast()) }
        if let last = digits.last, let unit = units[Character(last.uppercased())] {
            multiplier = unit
            digits = String(digits.dropLast())
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let value = UInt64(digits) else {
            return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }
}

/// Parses durations such as `1`, `0.5` (seconds), `500ms`, `2s`, `1m`, `1h` into seconds.
public enum TimeSpan {
    public static func parse(_ text: String) -> Double? {
        let units: [(suffix: String, seconds: Double)] = [
            ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600),
        ]
        let trimmed = text.trimmingCharacters(in: " ")
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            return number(String(trimmed.dropLast(unit.suffix.count))).map { $0 * unit.seconds }
        }
        return number(trimmed)
    }

    private static func number(_ text: String) -> Double? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCIIDigit || $0 == "." }),
            let value = Double(text), value.isFinite, value >= 0
        else { return nil }
        return value
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var result = Substring(self)
        while result.first == set { result.removeFirst() }
        while result.last == set { result.removeLast() }
        return String(result)
    }
}
