using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace NameRnn.Contracts;

/// <summary>Little-endian binary writing for the wire format: raw float32 arrays, length-prefixed UTF-8 strings.</summary>
public sealed class WireWriter(int capacity)
{
    private byte[] _buffer = new byte[Math.Max(capacity, 64)];
    private int _length;

    private Span<byte> Take(int count)
    {
        if (_length + count > _buffer.Length)
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + count));
        var span = _buffer.AsSpan(_length, count);
        _length += count;
        return span;
    }

    public void Byte(byte value) => Take(1)[0] = value;
    public void Int32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), value);
    public void Int64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), value);
    public void Double(double value) => BinaryPrimitives.WriteDoubleLittleEndian(Take(8), value);

    public void String(string value)
    {
        var count = Encoding.UTF8.GetByteCount(value);
        Int32(count);
        Encoding.UTF8.GetBytes(value, Take(count));
    }

    /// <summary>-1 for null, else the count followed by the raw little-endian float32 values.</summary>
    public void Floats(float[]? values)
    {
        if (values is null)
        {
            Int32(-1);
            return;
        }
        Int32(values.Length);
        var target = Take(values.Length * sizeof(float));
        if (BitConverter.IsLittleEndian)
            MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(target);
        else
            for (var i = 0; i < values.Length; i++)
                BinaryPrimitives.WriteSingleLittleEndian(target[(i * 4)..], values[i]);
    }

    public void Int32s(int[] values)
    {
        Int32(values.Length);
        foreach (var v in values) Int32(v);
    }

    public void Strings(string[] values)
    {
        Int32(values.Length);
        foreach (var v in values) String(v);
    }

    /// <summary>The bytes written; the buffer itself, without a copy, when the capacity given was exact.</summary>
    public byte[] ToArray() => _length == _buffer.Length ? _buffer : _buffer.AsSpan(0, _length).ToArray();

    /// <summary>What <see cref="String"/> writes for <paramref name="value"/>.</summary>
    public static int SizeOf(string value) => 4 + Encoding.UTF8.GetByteCount(value);

    /// <summary>What <see cref="Floats"/> writes for <paramref name="values"/>.</summary>
    public static int SizeOf(float[]? values) => 4 + (values?.Length ?? 0) * sizeof(float);
}

/// <summary>The reading side; any length or value that does not fit the remaining bytes is a <see cref="FormatException"/>.</summary>
public ref struct WireReader(ReadOnlySpan<byte> bytes)
{
    private readonly ReadOnlySpan<byte> _bytes = bytes;
    private int _position;

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || count > _bytes.Length - _position)
            throw new FormatException($"payload cut short: {count} bytes wanted at offset {_position}, {_bytes.Length - _position} left");
        var span = _bytes.Slice(_position, count);
        _position += count;
        return span;
    }

    public byte Byte() => Take(1)[0];
    public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
    public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
    public double Double() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

    /// <summary>An element count, checked against the bytes left: each element takes at least <paramref name="elementSize"/> bytes.</summary>
    public int Count(int elementSize)
    {
        var count = Int32();
        if (count < 0 || (long)count * elementSize > _bytes.Length - _position)
            throw new FormatException($"a count of {count} at offset {_position - 4} does not fit the {_bytes.Length - _position} bytes left");
        return count;
    }

    public string String()
    {
        var bytes = Take(Count(1));
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new FormatException($"invalid UTF-8 in a string at offset {_position - bytes.Length}: {e.Message}");
        }
    }

    public float[]? Floats()
    {
        var peek = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        if (peek == -1) return null;
        _position -= 4;
        var count = Count(sizeof(float));
        var source = Take(count * sizeof(float));
        var values = new float[count];
        if (BitConverter.IsLittleEndian)
            source.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        else
            for (var i = 0; i < count; i++)
                values[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(i * 4)..]);
        return values;
    }

    public float[] RequiredFloats() => Floats() ?? throw new FormatException("a required float array is missing");

    public int[] Int32s()
    {
        var values = new int[Count(4)];
        for (var i = 0; i < values.Length; i++) values[i] = Int32();
        return values;
    }

    public string[] Strings()
    {
        var values = new string[Count(4)];
        for (var i = 0; i < values.Length; i++) values[i] = String();
        return values;
    }

    public void End()
    {
        if (_position != _bytes.Length)
            throw new FormatException($"{_bytes.Length - _position} bytes left over after the message");
    }

    private static readonly UTF8Encoding StrictUtf8 = new(false, true);
}
