using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace NameRnn.Worker.Hosting;

/// <summary>A wrong command line: exit code 2, one line on stderr.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Marks a settings property as the command-line option <see cref="Name"/>.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OptionAttribute(string name, string help) : Attribute
{
    public string Name { get; } = name;
    public string Help { get; } = help;
    /// <summary>Shown in the help as the value's placeholder; empty for a flag.</summary>
    public string Value { get; init; } = "X";

    /// <summary>Left out of the help (options for the project's own tests).</summary>
    public bool Hidden { get; init; }
}

/// <summary>Marks a settings property whose own properties are options too (a group shared by several commands).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class OptionGroupAttribute : Attribute;

/// <summary>An option of a settings type: its attribute, its property, and the group property it sits in, if any.</summary>
public sealed record BoundOption(OptionAttribute Attribute, PropertyInfo Property, PropertyInfo? Group)
{
    private object Owner(object settings) => Group is null ? settings : Group.GetValue(settings)!;
    public object? GetValue(object settings) => Property.GetValue(Owner(settings));
    public void SetValue(object settings, object? value) => Property.SetValue(Owner(settings), value);
    public bool IsFlag => (Nullable.GetUnderlyingType(Property.PropertyType) ?? Property.PropertyType) == typeof(bool);
}

/// <summary>
/// Applies <c>--name value</c>, <c>--name=value</c> and <c>--flag</c> options onto a settings object
/// whose properties carry <see cref="OptionAttribute"/>; the rest are positional arguments.
/// Unknown options and values of the wrong type are usage errors that name the option.
/// </summary>
public static class CommandLine
{
    public static IReadOnlyList<string> Apply(object settings, IReadOnlyList<string> args, ISet<string>? given = null)
    {
        var options = OptionsOf(settings.GetType()).ToDictionary(o => o.Attribute.Name);
        var positionals = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                positionals.AddRange(args.Skip(i + 1));
                break;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                positionals.Add(arg);
                continue;
            }
            var eq = arg.IndexOf('=');
            var name = eq < 0 ? arg : arg[..eq];
            if (!options.TryGetValue(name, out var option))
                throw new UsageException($"unknown option '{name}'; see --help for the options of this command");
            string? value;
            if (option.IsFlag)
                value = eq < 0 ? "true" : arg[(eq + 1)..];
            else if (eq >= 0)
                value = arg[(eq + 1)..];
            else if (i + 1 < args.Count)
                value = args[++i];
            else
                throw new UsageException($"option {name} needs a value");
            option.SetValue(settings, Convert(name, value, option.Property.PropertyType));
            given?.Add(name);
        }
        return positionals;
    }

    /// <summary>
    /// Applies <c>appsettings.json</c> (beside the program, then in the working folder; section
    /// <paramref name="section"/>) and <c>NAMERNN_</c> environment variables (e.g.
    /// <c>NAMERNN_TRAIN__EPOCHS=5</c>) onto the settings' defaults; the command line comes after.
    /// </summary>
    public static void Configure(object settings, string section)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
            .AddEnvironmentVariables("NAMERNN_")
            .Build();
        var part = configuration.GetSection(section);
        try
        {
            part.Bind(settings, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new UsageException($"configuration section '{part.Path}' (appsettings.json or NAMERNN_ environment variables): {e.Message}");
        }
    }

    /// <summary>The options of a settings type, those of its option groups included.</summary>
    public static IEnumerable<BoundOption> OptionsOf(Type type) =>
        type.GetProperties().SelectMany(p =>
            p.GetCustomAttribute<OptionGroupAttribute>() is not null
                ? p.PropertyType.GetProperties()
                    .Where(q => q.GetCustomAttribute<OptionAttribute>() is not null)
                    .Select(q => new BoundOption(q.GetCustomAttribute<OptionAttribute>()!, q, p))
                : p.GetCustomAttribute<OptionAttribute>() is { } attribute
                    ? [new BoundOption(attribute, p, null)]
                    : []);

    /// <summary>One line per option, with its default value unless the help text already says it.</summary>
    public static string Help(object defaults) => string.Join(Environment.NewLine,
        OptionsOf(defaults.GetType()).Where(o => !o.Attribute.Hidden).Select(o =>
        {
            var left = o.IsFlag ? o.Attribute.Name : $"{o.Attribute.Name} {o.Attribute.Value}";
            var value = o.GetValue(defaults);
            var shown = o.IsFlag || value is null || o.Attribute.Help.Contains("default", StringComparison.Ordinal)
                ? ""
                : $" (default: {System.Convert.ToString(value, CultureInfo.InvariantCulture)})";
            return $"  {left,-28} {o.Attribute.Help}{shown}";
        }));

    private static object? Convert(string name, string value, Type type)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target == typeof(string)) return value;
        if (target == typeof(int) && int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i)) return i;
        if (target == typeof(long) && long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l)) return l;
        if (target == typeof(double) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)) return d;
        if (target == typeof(bool) && bool.TryParse(value, out var b)) return b;
        var expected = target == typeof(int) || target == typeof(long) ? "a whole number" : target == typeof(double) ? "a number" : target == typeof(bool) ? "true or false" : target.Name;
        throw new UsageException($"option {name}: expected {expected}, got '{value}'");
    }

    /// <summary>Checks that <paramref name="value"/> lies in [min, max].</summary>
    public static void Range(string option, double value, double min, double max)
    {
        if (value < min || value > max)
            throw new UsageException($"option {option}: {value.ToString(CultureInfo.InvariantCulture)} is out of range: expected {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}");
    }

    public static void OneOf(string option, string value, IReadOnlyList<string> allowed)
    {
        if (!allowed.Contains(value))
            throw new UsageException($"option {option}: '{value}' is not one of {string.Join(", ", allowed)}");
    }
}
