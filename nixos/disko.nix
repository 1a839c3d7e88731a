# The disk of every node, for disko (nixos-anywhere partitions and formats through it, then installs). One layout
# boots on both Hetzner Cloud machine kinds: x86 (CX/CPX/CCX) boot by BIOS from the 1 MiB BIOS-boot partition
# (GRUB's core image), Arm (CAX) boot by UEFI from the ESP; nixos/node.nix installs GRUB for both
# (efiInstallAsRemovable: a VM's firmware has no boot entries of ours). Pure Nix, evaluated by make test.
{ device ? "/dev/sda" }:
{
  disko.devices.disk.main = {
    type = "disk";
    inherit device;
    content = {
      type = "gpt";
      partitions = {
        bios = {
          priority = 1;
          size = "1M";
          type = "EF02"; # BIOS boot: where GRUB puts its core image on a GPT disk
        };
        esp = {
          priority = 2;
          size = "512M";
          type = "EF00";
          content = {
            type = "filesystem";
            format = "vfat";
            mountpoint = "/boot";
            mountOptions = [ "umask=0077" ];
          };
        };
        root = {
          size = "100%";
          content = {
            type = "filesystem";
            format = "ext4";
            mountpoint = "/";
          };
        };
      };
    };
  };
}
