extension String {
    /// The text without the spaces and tabs HTTP allows around a field value or a list
    /// element (RFC 9110 "OWS").
    public func trimmingOptionalWhitespace() -> String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }
}
