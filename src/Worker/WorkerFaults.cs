namespace NameRnn.Worker;

/// <summary>
/// Faults a worker can be told to show, for the tests of fault handling only (hidden options):
/// answer later by a time per micro-batch, and throw once on one (step, micro-batch).
/// </summary>
public sealed record WorkerFaults(TimeSpan SlowDown, (long Step, int MicroBatch)? FailAt)
{
    public static readonly WorkerFaults None = new(TimeSpan.Zero, null);

    /// <summary>Parses "STEP:MICROBATCH"; null or empty gives null.</summary>
    public static (long, int)? ParseFailAt(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var parts = text.Split(':');
        if (parts.Length == 2 && long.TryParse(parts[0], out var step) && int.TryParse(parts[1], out var mb)) return (step, mb);
        throw new Hosting.UsageException($"option --test-fail-at: expected STEP:MICROBATCH, got '{text}'");
    }
}
