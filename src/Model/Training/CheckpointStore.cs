using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using NameRnn.Model.Data;

namespace NameRnn.Model.Training;

/// <summary>
/// A point a run can continue from exactly: the run's state, the best parameters so far and the
/// coordinator's bookkeeping (a JSON document of its own).
/// </summary>
public sealed record Checkpoint(RunState State, float[]? BestParameters, string Bookkeeping);

/// <summary>
/// Checkpoint files <c>checkpoints/step-NNNNNNNNN.ckpt</c>: a magic line, a JSON header (position,
/// optimizer kind and steps, the array lengths, the bookkeeping), the float32 arrays little-endian,
/// and the SHA-256 of everything before it. Written to a temporary file, flushed to disk and renamed;
/// the newest few are kept. A file that is cut short or altered fails its checksum and the one
/// before it is used.
/// </summary>
public static class CheckpointStore
{
    public const string Folder = "checkpoints";
    private static readonly byte[] Magic = "NRCKPT1\n"u8.ToArray();

    private sealed record Header(int Epoch, int StepInEpoch, long Step, string OptimizerKind, long OptimizerSteps,
        int[] OptimizerBuffers, int Parameters, int Average, int Best, string Bookkeeping);

    public static string Write(string runDirectory, Checkpoint checkpoint, int keep = 3)
    {
        var folder = Path.Combine(runDirectory, Folder);
        Directory.CreateDirectory(folder);
        var s = checkpoint.State;
        var header = new Header(s.Epoch, s.StepInEpoch, s.Step, s.Optimizer.Kind, s.Optimizer.Steps,
            s.Optimizer.Buffers.Select(b => b.Length).ToArray(), s.Parameters.Length, s.Average?.Length ?? -1,
            checkpoint.BestParameters?.Length ?? -1, checkpoint.Bookkeeping);
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var body = new MemoryStream();
        body.Write(Magic);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, json.Length);
        body.Write(length);
        body.Write(json);
        body.Write(ModelStore.ToBytes(s.Parameters));
        if (s.Average is not null) body.Write(ModelStore.ToBytes(s.Average));
        if (checkpoint.BestParameters is not null) body.Write(ModelStore.ToBytes(checkpoint.BestParameters));
        foreach (var buffer in s.Optimizer.Buffers) body.Write(ModelStore.ToBytes(buffer));
        body.Write(SHA256.HashData(body.GetBuffer().AsSpan(0, (int)body.Length)));
        var path = Path.Combine(folder, $"step-{s.Step:D9}.ckpt");
        AtomicFile.Write(path, body.GetBuffer().AsSpan(0, (int)body.Length));
        foreach (var old in List(runDirectory).Skip(keep)) File.Delete(old);
        return path;
    }

    /// <summary>The checkpoint files of a run, newest first.</summary>
    public static IReadOnlyList<string> List(string runDirectory)
    {
        var folder = Path.Combine(runDirectory, Folder);
        return Directory.Exists(folder)
            ? Directory.GetFiles(folder, "step-*.ckpt").OrderByDescending(Path.GetFileName, StringComparer.Ordinal).ToList()
            : [];
    }

    /// <summary>The newest checkpoint that reads back whole, and why each newer one was refused.</summary>
    public static (Checkpoint? Checkpoint, string? Path, IReadOnlyList<string> Refused) LoadLatest(string runDirectory)
    {
        var refused = new List<string>();
        foreach (var path in List(runDirectory))
        {
            try
            {
                return (Read(path), path, refused);
            }
            catch (DataException e)
            {
                refused.Add(e.Message);
            }
        }
        return (null, null, refused);
    }

    public static Checkpoint Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length + 4 + 32 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new DataException($"{path}: not a NameRnn checkpoint (or cut short: {bytes.Length} bytes)");
        var content = new ReadOnlyMemory<byte>(bytes, 0, bytes.Length - 32);
        if (!SHA256.HashData(content.Span).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            throw new DataException($"{path}: checksum mismatch: the checkpoint is truncated or corrupted");
        var at = Magic.Length;
        var jsonLength = BinaryPrimitives.ReadInt32LittleEndian(content.Span[at..]);
        at += 4;
        Header header;
        try
        {
            header = JsonSerializer.Deserialize<Header>(content.Span.Slice(at, jsonLength))
                     ?? throw new DataException($"{path}: empty checkpoint header");
        }
        catch (Exception e) when (e is JsonException or ArgumentOutOfRangeException)
        {
            throw new DataException($"{path}: unreadable checkpoint header ({e.Message})");
        }
        at += jsonLength;
        float[] Take(int count)
        {
            if (count < 0 || (long)count * 4 > content.Length - at)
                throw new DataException($"{path}: the checkpoint's arrays do not fit the file");
            var values = ModelStore.FromBytes(content.Span.Slice(at, count * 4));
            at += count * 4;
            return values;
        }
        var parameters = Take(header.Parameters);
        var average = header.Average >= 0 ? Take(header.Average) : null;
        var best = header.Best >= 0 ? Take(header.Best) : null;
        var buffers = header.OptimizerBuffers.Select(Take).ToArray();
        if (at != content.Length) throw new DataException($"{path}: {content.Length - at} unexpected bytes after the arrays");
        var state = new RunState(header.Epoch, header.StepInEpoch, header.Step, parameters, average,
            new OptimizerState(header.OptimizerKind, header.OptimizerSteps, buffers));
        return new Checkpoint(state, best, header.Bookkeeping);
    }

    /// <summary>Describes a checkpoint for log lines.</summary>
    public static string Describe(Checkpoint c) =>
$"epoch {c.State.Epoch + 1}, step {c.State.Step}";
}
