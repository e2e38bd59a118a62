// SPDX-License-Identifier: GPL-2.0
/*
 * unionrs: C glue for the parts of the VFS that Rust cannot reach through
 * `kernel::bindings`: the fs_context API (its structs are opaque to bindgen
 * and its parameter table is built from macros), a few static inlines and
 * BIT() constants. No union logic lives here: every decision is made by the
 * Rust hooks declared below (implemented in src/vfs/fs_type.rs).
 */
#include <linux/backing-file.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/fs_stack.h>
#include <linux/module.h>
#include <linux/posix_acl.h>
#include <linux/posix_acl_xattr.h>
#include <linux/xattr.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/statfs.h>
#include <linux/uio.h>

/* Rust hooks (src/vfs/fs_type.rs). */
void *unionrs_rs_fc_alloc(void);
void unionrs_rs_fc_free(void *cfg);
int unionrs_rs_parse_param(struct fs_context *fc, void *cfg, int opt,
			   const char *string, struct file *file, u32 uint_32,
			   bool negated);
int unionrs_rs_fill_super(struct super_block *sb, struct fs_context *fc,
			  void *cfg);
int unionrs_rs_reconfigure(struct fs_context *fc, void *cfg,
			   struct super_block *sb, bool wants_rw);
void unionrs_rs_free_sb_info(void *info);

/* Exported to Rust (src/vfs/ffi.rs). */
int unionrs_register(struct module *owner);
void unionrs_unregister(void);
void unionrs_fc_log(struct fs_context *fc, char level, const char *msg);
bool unionrs_fc_is_reconfigure(struct fs_context *fc);
bool unionrs_fc_oldapi(struct fs_context *fc);
int unionrs_kern_path(const char *name, bool follow, struct path *path);
void unionrs_sb_set_rdonly(struct super_block *sb);
bool unionrs_sb_rdonly(struct super_block *sb);
bool unionrs_mnt_is_readonly(struct vfsmount *mnt);
void unionrs_copy_attr_all(struct inode *dest, const struct inode *src);
void unionrs_set_file_aops(struct inode *inode);
void unionrs_seq_show_option(struct seq_file *m, const char *name,
			     const char *value);
struct cred *unionrs_prepare_mounter_creds(void);
const struct cred *unionrs_override_creds(const struct cred *cred);
void unionrs_revert_creds(const struct cred *old);
struct dentry *unionrs_lookup_one(struct vfsmount *mnt, const char *name,
				  int len, struct dentry *base);
struct vfsmount *unionrs_clone_layer_mount(const struct path *path,
					   bool readonly);
struct mnt_idmap *unionrs_mnt_idmap(struct vfsmount *mnt);
int unionrs_statfs(const struct path *real, struct kstatfs *buf, long magic);
bool unionrs_inode_is_new(struct inode *inode);
u64 unionrs_parent_ino(struct dentry *dentry);
bool unionrs_capable_sys_admin(void);
void unionrs_sb_set_posixacl(struct super_block *sb);
struct posix_acl *unionrs_get_inode_acl(struct inode *real, int type);
struct posix_acl *unionrs_get_acl(struct vfsmount *mnt, struct dentry *real,
				  int type);
struct file *unionrs_backing_open(struct file *user_file,
				  const struct path *real, const struct cred *cred);
ssize_t unionrs_backing_read_iter(struct file *real, struct kiocb *iocb,
				  struct iov_iter *iter, const struct cred *cred);
ssize_t unionrs_backing_splice_read(struct file *real, struct file *in,
				    loff_t *ppos, struct pipe_inode_info *pipe,
				    size_t len, unsigned int flags,
				    const struct cred *cred);
int unionrs_backing_mmap(struct file *real, struct vm_area_struct *vma,
			 const struct cred *cred);
loff_t unionrs_file_llseek(struct file *file, struct file *real, loff_t offset,
			   int whence);

/*
 * Option numbers. They must match `params::Opt` (src/params.rs); the
 * values after the on/off ones exist so that the options container runtimes
 * pass to overlayfs (index=off, xino=auto, ...) are understood.
 */
enum {
	Opt_lowerdir,
	Opt_lowerdir_add,
	Opt_upperdir,
	Opt_workdir,
	Opt_userxattr,
	Opt_index,
	Opt_metacopy,
	Opt_nfs_export,
	Opt_redirect_dir,
	Opt_xino,
};

static const struct constant_table unionrs_param_bool[] = {
	{ "on", 1 },
	{ "off", 0 },
	{}
};

/* Same numbering as `params::RedirectDir`. */
static const struct constant_table unionrs_param_redirect_dir[] = {
	{ "off", 0 },
	{ "follow", 1 },
	{ "nofollow", 2 },
	{ "on", 3 },
	{}
};

/* Same numbering as `params::Xino`. */
static const struct constant_table unionrs_param_xino[] = {
	{ "off", 0 },
	{ "auto", 1 },
	{ "on", 2 },
	{}
};

static const struct fs_parameter_spec unionrs_param_spec[] = {
	fsparam_string_empty("lowerdir", Opt_lowerdir),
	fsparam_file_or_string("lowerdir+", Opt_lowerdir_add),
	fsparam_file_or_string("upperdir", Opt_upperdir),
	fsparam_file_or_string("workdir", Opt_workdir),
	fsparam_flag("userxattr", Opt_userxattr),
	fsparam_enum("index", Opt_index, unionrs_param_bool),
	fsparam_enum("metacopy", Opt_metacopy, unionrs_param_bool),
	fsparam_enum("nfs_export", Opt_nfs_export, unionrs_param_bool),
	fsparam_enum("redirect_dir", Opt_redirect_dir, unionrs_param_redirect_dir),
	fsparam_enum("xino", Opt_xino, unionrs_param_xino),
	{}
};

/*
 * Split the monolithic option string on unescaped commas, as overlayfs does,
 * so that "\," can appear inside a path.
 */
static char *unionrs_next_opt(char **s)
{
	char *sbegin = *s;
	char *p;

	if (!sbegin)
		return NULL;
	for (p = sbegin; *p; p++) {
		if (*p == '\\') {
			p++;
			if (!*p)
				break;
		} else if (*p == ',') {
			*p = '\0';
			*s = p + 1;
			return sbegin;
		}
	}
	*s = NULL;
	return sbegin;
}

static int unionrs_parse_monolithic(struct fs_context *fc, void *data)
{
	return vfs_parse_monolithic_sep(fc, data, unionrs_next_opt);
}

static int unionrs_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, unionrs_param_spec, param, &result);
	if (opt < 0)
		return opt;
	return unionrs_rs_parse_param(fc, fc->fs_private, opt,
				      param->type == fs_value_is_string ? param->string : NULL,
				      param->type == fs_value_is_file ? param->file : NULL,
				      result.uint_32, result.negated);
}

static int unionrs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	return unionrs_rs_fill_super(sb, fc, fc->fs_private);
}

static int unionrs_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, unionrs_fill_super);
}

static int unionrs_reconfigure(struct fs_context *fc)
{
	return unionrs_rs_reconfigure(fc, fc->fs_private, fc->root->d_sb,
				      !(fc->sb_flags & SB_RDONLY));
}

static void unionrs_free_fc(struct fs_context *fc)
{
	if (fc->fs_private)
		unionrs_rs_fc_free(fc->fs_private);
	fc->fs_private = NULL;
}

static const struct fs_context_operations unionrs_context_ops = {
	.parse_monolithic = unionrs_parse_monolithic,
	.parse_param	  = unionrs_parse_param,
	.get_tree	  = unionrs_get_tree,
	.reconfigure	  = unionrs_reconfigure,
	.free		  = unionrs_free_fc,
};

static int unionrs_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = unionrs_rs_fc_alloc();
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &unionrs_context_ops;
	return 0;
}

/* Our per-superblock data refers to the layers: free it after the inodes. */
static void unionrs_kill_sb(struct super_block *sb)
{
	void *info = sb->s_fs_info;

	kill_anon_super(sb);
	if (info)
		unionrs_rs_free_sb_info(info);
}

static struct file_system_type unionrs_fs_type = {
	.name		 = "unionrs",
	.init_fs_context = unionrs_init_fs_context,
	.parameters	 = unionrs_param_spec,
	.kill_sb	 = unionrs_kill_sb,
};

int unionrs_register(struct module *owner)
{
	unionrs_fs_type.owner = owner;
	return register_filesystem(&unionrs_fs_type);
}

void unionrs_unregister(void)
{
	unregister_filesystem(&unionrs_fs_type);
}

/*
 * Log to the fs_context (what `mount` and fsopen() users read) and always to
 * the kernel log as well: logfc() only prints when there is no fc log.
 */
void unionrs_fc_log(struct fs_context *fc, char level, const char *msg)
{
	logfc(fc->log.log, "unionrs", level, "%s", msg);
	if (fc->log.log) {
		if (level == 'e')
			pr_err("unionrs: %s\n", msg);
		else if (level == 'w')
			pr_warn("unionrs: %s\n", msg);
		else
			pr_info("unionrs: %s\n", msg);
	}
}

bool unionrs_fc_is_reconfigure(struct fs_context *fc)
{
	return fc->purpose == FS_CONTEXT_FOR_RECONFIGURE;
}

bool unionrs_fc_oldapi(struct fs_context *fc)
{
	return fc->oldapi;
}

int unionrs_kern_path(const char *name, bool follow, struct path *path)
{
	return kern_path(name, follow ? LOOKUP_FOLLOW : 0, path);
}

void unionrs_sb_set_rdonly(struct super_block *sb)
{
	sb->s_flags |= SB_RDONLY;
}

bool unionrs_sb_rdonly(struct super_block *sb)
{
	return sb_rdonly(sb);
}

bool unionrs_mnt_is_readonly(struct vfsmount *mnt)
{
	return __mnt_is_readonly(mnt);
}

/*
 * Attributes of a new union inode from its real inode: mode, owner, times,
 * size; only the inode flags that describe the file (as overlayfs copies),
 * not the real fs' internal ones (S_PRIVATE, S_DAX, ...). ACLs are asked
 * from the real inode every time, never cached in ours.
 */
void unionrs_copy_attr_all(struct inode *dest, const struct inode *src)
{
	unsigned int mask = S_SYNC | S_NOATIME | S_APPEND | S_IMMUTABLE | S_CASEFOLD;

	fsstack_copy_attr_all(dest, src);
	i_size_write(dest, i_size_read(src));
	dest->i_flags = src->i_flags & mask;
	dest->i_acl = dest->i_default_acl = ACL_DONT_CACHE;
}

/* Regular files: O_DIRECT is the real file's business (as overlayfs does). */
static const struct address_space_operations unionrs_file_aops = {
	.direct_IO = noop_direct_IO,
};

void unionrs_set_file_aops(struct inode *inode)
{
	inode->i_mapping->a_ops = &unionrs_file_aops;
}

void unionrs_seq_show_option(struct seq_file *m, const char *name,
			     const char *value)
{
	seq_show_option(m, name, value);
}

/*
 * The credentials every layer operation runs with: the mounter's, minus
 * CAP_SYS_RESOURCE so that the layers' quotas and reserved space apply to
 * what is done through the union (as overlayfs does).
 */
struct cred *unionrs_prepare_mounter_creds(void)
{
	struct cred *cred = prepare_creds();

	if (cred)
		cap_lower(cred->cap_effective, CAP_SYS_RESOURCE);
	return cred;
}

const struct cred *unionrs_override_creds(const struct cred *cred)
{
	return override_creds(cred);
}

void unionrs_revert_creds(const struct cred *old)
{
	revert_creds(old);
}

/*
 * Looks up one name in a layer directory, with permission checks against the
 * current (mounter's) credentials, as overlayfs does. Returns a dentry,
 * possibly negative, or an ERR_PTR.
 */
struct dentry *unionrs_lookup_one(struct vfsmount *mnt, const char *name,
				  int len, struct dentry *base)
{
	return lookup_one_unlocked(mnt_idmap(mnt), &QSTR_LEN(name, len), base);
}

/*
 * A private clone of a layer's mount: unaffected by later changes to the
 * mount table, and for lower layers read-only and noatime, so that nothing
 * done through the union can modify them (not even atime).
 */
struct vfsmount *unionrs_clone_layer_mount(const struct path *path,
					   bool readonly)
{
	struct vfsmount *mnt = clone_private_mount(path);

	if (!IS_ERR(mnt) && readonly)
		mnt->mnt_flags |= MNT_READONLY | MNT_NOATIME;
	return mnt;
}

struct mnt_idmap *unionrs_mnt_idmap(struct vfsmount *mnt)
{
	return mnt_idmap(mnt);
}

int unionrs_statfs(const struct path *real, struct kstatfs *buf, long magic)
{
	int err = vfs_statfs(real, buf);

	if (!err)
		buf->f_type = magic;
	return err;
}

bool unionrs_inode_is_new(struct inode *inode)
{
	return inode_state_read_once(inode) & I_NEW;
}

struct file *unionrs_backing_open(struct file *user_file,
				  const struct path *real, const struct cred *cred)
{
	int flags = user_file->f_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC);

	return backing_file_open(user_file, flags | O_LARGEFILE, real, cred);
}

ssize_t unionrs_backing_read_iter(struct file *real, struct kiocb *iocb,
				  struct iov_iter *iter, const struct cred *cred)
{
	struct backing_file_ctx ctx = {
		.cred = cred,
	};

	if (!iov_iter_count(iter))
		return 0;
	return backing_file_read_iter(real, iter, iocb, iocb->ki_flags, &ctx);
}

ssize_t unionrs_backing_splice_read(struct file *real, struct file *in,
				    loff_t *ppos, struct pipe_inode_info *pipe,
				    size_t len, unsigned int flags,
				    const struct cred *cred)
{
	struct backing_file_ctx ctx = {
		.cred = cred,
	};
	struct kiocb iocb;
	ssize_t ret;

	init_sync_kiocb(&iocb, in);
	iocb.ki_pos = *ppos;
	ret = backing_file_splice_read(real, &iocb, pipe, len, flags, &ctx);
	*ppos = iocb.ki_pos;
	return ret;
}

int unionrs_backing_mmap(struct file *real, struct vm_area_struct *vma,
			 const struct cred *cred)
{
	struct backing_file_ctx ctx = {
		.cred = cred,
	};

	return backing_file_mmap(real, vma, &ctx);
}

/*
 * No `accessed` hook in the contexts above: stat of a union object always asks
 * the real inode, so there is no cached atime to refresh.
 */

/*
 * llseek on the real file at the union file's position, then mirror the
 * resulting position (SEEK_DATA/SEEK_HOLE answers come from the real fs).
 */
loff_t unionrs_file_llseek(struct file *file, struct file *real, loff_t offset,
			   int whence)
{
	loff_t ret;

	if (whence == SEEK_CUR && offset == 0)
		return file->f_pos;
	inode_lock(file_inode(file));
	real->f_pos = file->f_pos;
	ret = vfs_llseek(real, offset, whence);
	file->f_pos = real->f_pos;
	inode_unlock(file_inode(file));
	return ret;
}

u64 unionrs_parent_ino(struct dentry *dentry)
{
	return d_parent_ino(dentry);
}

/* Whether the caller (not the mounter) may see trusted.* xattr names. */
bool unionrs_capable_sys_admin(void)
{
	return ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN);
}

void unionrs_sb_set_posixacl(struct super_block *sb)
{
	sb->s_flags |= SB_POSIXACL;
}

/* The real inode's ACL for permission checks (no permission check of its own). */
struct posix_acl *unionrs_get_inode_acl(struct inode *real, int type)
{
	if (!IS_POSIXACL(real))
		return NULL;
	return get_inode_acl(real, type);
}

/* The real object's ACL as getfacl sees it, through the layer mount. */
struct posix_acl *unionrs_get_acl(struct vfsmount *mnt, struct dentry *real,
				  int type)
{
	/* No ACLs on that layer: "no ACL" (ENODATA), as overlayfs answers. */
	if (!IS_POSIXACL(d_inode(real)))
		return NULL;
	return vfs_get_acl(mnt_idmap(mnt), real,
			   type == ACL_TYPE_ACCESS ? XATTR_NAME_POSIX_ACL_ACCESS :
						     XATTR_NAME_POSIX_ACL_DEFAULT);
}
