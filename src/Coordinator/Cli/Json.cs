using System.Text.Json;
using System.Text.Json.Serialization;

namespace NameRnn.Coordinator.Cli;

public static class Json
{
    /// <summary>Indented snake_case JSON, as in summary.json and the --json outputs.</summary>
    public static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
