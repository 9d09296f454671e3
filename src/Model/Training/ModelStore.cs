using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using NameRnn.Model.Data;
using NameRnn.Model.Network;

namespace NameRnn.Model.Training;

/// <summary>A trained model: its configuration, its vocabulary and labels, and its parameters.</summary>
public sealed record SavedModel(ModelConfig Config, IReadOnlyList<string> Labels, float[] Parameters);

/// <summary>
/// The model format: <c>NAME.json</c> (configuration, alphabet, labels, parameter shapes, SHA-256 of
/// the parameters) beside <c>NAME.bin</c> (the parameters as little-endian float32, in the module's
/// parameter order). Both are written to a temporary file and renamed into place.
/// </summary>
public static class ModelStore
{
    public const string DefaultName = "model";
    private const int FormatVersion = 1;

    private sealed record ModelFile(
        [property: JsonPropertyName("format")] int Format,
        [property: JsonPropertyName("cell")] string Cell,
        [property: JsonPropertyName("hidden")] int Hidden,
        [property: JsonPropertyName("inputs")] int Inputs,
        [property: JsonPropertyName("embedding")] int Embedding,
        [property: JsonPropertyName("bidirectional")] bool Bidirectional,
        [property: JsonPropertyName("alphabet")] string Alphabet,
        [property: JsonPropertyName("labels")] IReadOnlyList<string> Labels,
        [property: JsonPropertyName("parameter_shapes")] IReadOnlyDictionary<string, long[]> ParameterShapes,
        [property: JsonPropertyName("parameters_file")] string ParametersFile,
        [property: JsonPropertyName("parameters_sha256")] string ParametersSha256,
        [property: JsonPropertyName("pooling")] string? Pooling = null,
        [property: JsonPropertyName("layers")] int? Layers = null);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static void Save(string directory, SavedModel model, string name = DefaultName)
    {
        Directory.CreateDirectory(directory);
        var binName = name + ".bin";
        var file = new ModelFile(FormatVersion, model.Config.Cell, model.Config.Hidden, model.Config.Inputs, model.Config.Embedding, model.Config.Bidirectional, Alphabet.Letters,
            model.Labels, model.Config.ParameterShapes().ToDictionary(p => p.Name, p => p.Shape), binName, Sha256(model.Parameters), model.Config.Pooling, model.Config.Layers);
        AtomicFile.Write(Path.Combine(directory, binName), ToBytes(model.Parameters));
        AtomicFile.Write(Path.Combine(directory, name + ".json"), JsonSerializer.SerializeToUtf8Bytes(file, Json));
    }

    public static SavedModel Load(string directory, string name = DefaultName)
    {
        var jsonPath = Path.Combine(directory, name + ".json");
        if (!File.Exists(jsonPath))
            throw new DataException($"no model at '{directory}': expected {name}.json and {name}.bin written by 'train --out {directory}'");
        ModelFile file;
        try
        {
            file = JsonSerializer.Deserialize<ModelFile>(File.ReadAllBytes(jsonPath))
                   ?? throw new DataException($"{jsonPath}: empty model description");
        }
        catch (JsonException e)
        {
            throw new DataException($"{jsonPath}: not a NameRnn model description ({e.Message})");
        }
        if (file.Format != FormatVersion)
            throw new DataException($"{jsonPath}: model format {file.Format}, this program reads format {FormatVersion}");
        if (file.Alphabet != Alphabet.Letters)
            throw new DataException($"{jsonPath}: the model was trained on another alphabet");
        var pooling = file.Pooling ?? Poolings.Last;
        var layers = file.Layers ?? 1;
        if (!Cells.All.Contains(file.Cell) || file.Hidden <= 0 || file.Embedding < 0 || file.Labels is null || file.Labels.Count < 2 || !Poolings.All.Contains(pooling) || layers < 1)
            throw new DataException($"{jsonPath}: invalid model configuration (cell '{file.Cell}', hidden {file.Hidden}, pooling '{pooling}', layers {layers})");
        var config = new ModelConfig(file.Cell, file.Hidden, file.Labels.Count, file.Inputs, file.Embedding, file.Bidirectional, pooling, layers);
        var binPath = Path.Combine(directory, Path.GetFileName(file.ParametersFile));
        if (!File.Exists(binPath)) throw new DataException($"{binPath}: missing parameters file of the model in '{directory}'");
        var bytes = File.ReadAllBytes(binPath);
        if (bytes.Length != config.ParameterCount * sizeof(float))
            throw new DataException($"{binPath}: {bytes.Length} bytes, expected {config.ParameterCount * sizeof(float)} for a {file.Cell} model of hidden size {file.Hidden}");
        var parameters = FromBytes(bytes);
        if (Sha256(parameters) != file.ParametersSha256)
            throw new DataException($"{binPath}: the parameters do not match the SHA-256 in {jsonPath} (corrupted file?)");
        return new SavedModel(config, file.Labels, parameters);
    }

    /// <summary>SHA-256 of the little-endian float32 bytes of the parameters, lower-case hex.</summary>
    public static string Sha256(float[] parameters) => Convert.ToHexStringLower(SHA256.HashData(ToBytes(parameters)));

    public static byte[] ToBytes(float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (var i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        return bytes;
    }

    public static float[] FromBytes(ReadOnlySpan<byte> bytes)
    {
        var values = new float[bytes.Length / sizeof(float)];
        for (var i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * sizeof(float))..]);
        return values;
    }
}

/// <summary>Writes a file so that readers see either the old or the whole new content.</summary>
public static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
    }
}
