namespace NameRnn.Model.Data;

/// <summary>Bad or missing input data; the message names the file (and line) and says what was expected.</summary>
public sealed class DataException(string message) : Exception(message);
