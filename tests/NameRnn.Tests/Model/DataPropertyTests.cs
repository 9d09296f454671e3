using System.IO.Compression;
using FsCheck;
using FsCheck.Xunit;
using NameRnn.Model.Data;

namespace NameRnn.Tests.Model;

/// <summary>Random bytes as data files: the reader either reads them or says what is wrong; it never fails otherwise.</summary>
public class DataPropertyTests
{
    [Property(MaxTest = 200)]
    public void Random_bytes_in_a_data_file_load_or_raise_a_data_error_naming_the_file(byte[] content, NonEmptyString name)
    {
        var folder = TestData.TempFolder();
        var label = "L" + string.Concat(name.Get.Where(char.IsAsciiLetterOrDigit).Take(20));
        File.WriteAllBytes(Path.Combine(folder, label + ".txt"), content);
        File.WriteAllText(Path.Combine(folder, "Zz.txt"), "Smith\n");
        try
        {
            var data = NamesData.Load(folder);
            Assert.All(data.Pairs, p => Assert.True(p.Name.Length > 0 && p.Name.All(c => Alphabet.Letters.Contains(c))));
        }
        catch (DataException e)
        {
            Assert.Contains(label + ".txt", e.Message);
        }
    }

    [Property(MaxTest = 100)]
    public void Random_bytes_as_a_zip_raise_a_data_error_or_load(byte[] content)
    {
        var path = Path.Combine(TestData.TempFolder(), "data.zip");
        File.WriteAllBytes(path, content);
        try
        {
            NamesData.Load(path);
        }
        catch (DataException e)
        {
            Assert.Contains(path, e.Message);
        }
    }

    [Property(MaxTest = 100)]
    public void Any_text_normalises_to_letters_of_the_alphabet_only(string? text)
    {
        var normalised = Alphabet.Normalise(text ?? "");
        Assert.All(normalised, c => Assert.Contains(c, Alphabet.Letters));
        Assert.Equal(normalised, Alphabet.Normalise(normalised));
    }

    [Fact]
    public void Binary_garbage_as_a_data_file_names_the_file_and_line()
    {
        var folder = TestData.TempFolder();
        File.WriteAllText(Path.Combine(folder, "English.txt"), "Smith\n");
        var garbage = new byte[4096];
        new Random(7).NextBytes(garbage);
        File.WriteAllBytes(Path.Combine(folder, "Korean.txt"), garbage);
        var error = Assert.Throws<DataException>(() => NamesData.Load(folder));
        Assert.Contains("Korean.txt line", error.Message);
    }

    [Fact]
    public void A_class_left_empty_after_normalisation_is_refused_by_name()
    {
        var folder = TestData.TempFolder();
        File.WriteAllText(Path.Combine(folder, "English.txt"), "Smith\n");
        File.WriteAllText(Path.Combine(folder, "Chinese.txt"), "张伟\n李\n\n");
        var error = Assert.Throws<DataException>(() => NamesData.Load(folder));
        Assert.Contains("Chinese.txt", error.Message);
        Assert.Contains("no name is left", error.Message);
    }

    [Fact]
    public void A_zip_with_a_broken_entry_is_a_data_error()
    {
        var zip = TestData.TutorialZip(TestData.TempFolder());
        var bytes = File.ReadAllBytes(zip);
        for (var i = 200; i < 260; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(zip, bytes);
        Assert.Throws<DataException>(() => NamesData.Load(zip));
    }
}
