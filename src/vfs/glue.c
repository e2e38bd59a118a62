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
#include <linux/splice.h>
#include <linux/security.h>
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

/* Writes to the upper layer (below). */
struct dentry *unionrs_create_real(struct vfsmount *mnt, struct dentry *parent,
				   const char *name, int len, umode_t mode,
				   dev_t rdev, const char *link,
				   struct dentry *hardlink);
int unionrs_remove_real(struct vfsmount *mnt, struct dentry *parent,
			struct dentry *child);
int unionrs_rename_real(struct vfsmount *mnt, struct dentry *old_parent,
			struct dentry *old, const char *old_name, int old_len,
			struct dentry *new_parent, struct dentry *new,
			const char *new_name, int new_len, unsigned int flags,
			struct inode *expect_old, struct inode *expect_new,
			bool new_negative, struct dentry **replaced);
int unionrs_setxattr_real(struct vfsmount *mnt, struct dentry *d,
			  const char *name, const void *value, size_t size,
			  int flags);
int unionrs_removexattr_real(struct vfsmount *mnt, struct dentry *d,
			     const char *name);
int unionrs_setattr_real(struct vfsmount *mnt, struct dentry *d,
			 struct iattr *attr);
int unionrs_copy_attrs_real(struct vfsmount *mnt, struct dentry *d,
			    const struct kstat *st);
int unionrs_getattr_real(const struct path *p, struct kstat *st);
int unionrs_copy_xattrs_real(const struct path *from, struct vfsmount *mnt,
			     struct dentry *to, const char *skip_prefix);
int unionrs_copy_data_real(const struct path *from, const struct path *to,
			   loff_t len);
char *unionrs_readlink_real(struct dentry *d);
const struct cred *unionrs_creator_begin(const struct cred *mounter,
					 struct inode *dir);
void unionrs_creator_end(const struct cred *old);
ssize_t unionrs_backing_write_iter(struct file *real, struct kiocb *iocb,
				   struct iov_iter *iter, const struct cred *cred);
ssize_t unionrs_backing_splice_write(struct file *real, struct pipe_inode_info *pipe,
				     struct file *out, loff_t *ppos, size_t len,
				     unsigned int flags, const struct cred *cred);
long unionrs_fallocate_real(struct file *file, struct file *real, int mode,
			    loff_t offset, loff_t len, const struct cred *cred);
int unionrs_fsync_file(struct file *real, loff_t start, loff_t end, int datasync);
void unionrs_d_drop(struct dentry *d);
void unionrs_d_instantiate(struct dentry *d, struct inode *inode);
struct dentry *unionrs_dget_parent(struct dentry *d);
int unionrs_dentry_name(struct dentry *d, char *buf, int size);
void unionrs_copy_attr(struct inode *dest, struct inode *src);
bool unionrs_is_whiteout_dentry(struct dentry *d);
bool unionrs_inuse_trylock(struct dentry *d);
void unionrs_inuse_unlock(struct dentry *d);
bool unionrs_is_our_sb(struct super_block *sb);
struct file *unionrs_backing_tmpfile(struct file *user_file,
				     const struct path *parent, umode_t mode);
int unionrs_tmpfile_finish(struct file *file, struct inode *inode);
bool unionrs_file_opened(struct file *file);
void unionrs_uuid_gen(u8 *out);
bool unionrs_d_unhashed(struct dentry *d);
int unionrs_remove_name(struct vfsmount *mnt, struct dentry *parent,
			const char *name, int len, struct inode *expect);
int unionrs_set_times_real(struct vfsmount *mnt, struct dentry *d,
			   const struct kstat *st);
void unionrs_sb_set_uuid(struct super_block *sb, const u8 *uuid);
int unionrs_set_acl_real(struct vfsmount *mnt, struct dentry *d, int type,
			 struct posix_acl *acl);

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
	Opt_uuid,
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

/* Same numbering as `params::Uuid`. */
static const struct constant_table unionrs_param_uuid[] = {
	{ "off", 0 },
	{ "null", 1 },
	{ "auto", 2 },
	{ "on", 3 },
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
	fsparam_enum("uuid", Opt_uuid, unionrs_param_uuid),
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

/* ------------------------------------------------------------------------
 * Writes to the upper layer. Each helper below is one VFS operation with the
 * locking and freeze protection it needs (mnt_want_write on the layer's
 * private mount, then the directory locks through start_creating() & co.).
 * What to do, where and in which order is decided by the Rust callers.
 */

/* A unique name for a temporary object in the work directory ("#<n>"). */
static void unionrs_tempname(char name[16])
{
	static atomic_t temp_id = ATOMIC_INIT(0);

	snprintf(name, 16, "#%x", atomic_inc_return(&temp_id));
}

/*
 * Creates `name` (or a temporary name if `name` is NULL) in `parent` on the
 * writable layer mount `mnt`: a hard link to `hardlink` if given, else an
 * object of type and mode `mode` (`rdev` for devices, `link` for symlinks).
 * Returns the new positive dentry (referenced) or an ERR_PTR; -EEXIST if the
 * name exists.
 */
struct dentry *unionrs_create_real(struct vfsmount *mnt, struct dentry *parent,
				   const char *name, int len, umode_t mode,
				   dev_t rdev, const char *link,
				   struct dentry *hardlink)
{
	struct mnt_idmap *idmap = mnt_idmap(mnt);
	struct inode *dir = d_inode(parent);
	char tmp[16];
	struct dentry *d;
	int err;

	if (!name) {
		unionrs_tempname(tmp);
		name = tmp;
		len = strlen(tmp);
	}
	err = mnt_want_write(mnt);
	if (err)
		return ERR_PTR(err);
	d = start_creating(idmap, parent, &QSTR_LEN(name, len));
	if (IS_ERR(d))
		goto out;
	if (d_is_positive(d)) {
		end_creating(d);
		d = ERR_PTR(-EEXIST);
		goto out;
	}
	if (hardlink) {
		err = vfs_link(hardlink, idmap, dir, d, NULL);
	} else {
		switch (mode & S_IFMT) {
		case S_IFREG:
			err = vfs_create(idmap, d, mode, NULL);
			break;
		case S_IFDIR:
			d = vfs_mkdir(idmap, dir, d, mode, NULL);
			err = PTR_ERR_OR_ZERO(d);
			break;
		case S_IFLNK:
			err = vfs_symlink(idmap, dir, d, link, NULL);
			break;
		case S_IFCHR:
		case S_IFBLK:
		case S_IFIFO:
		case S_IFSOCK:
			err = vfs_mknod(idmap, dir, d, mode, rdev, NULL);
			break;
		default:
			err = -EPERM;
		}
	}
	if (!err && (d_is_negative(d) || d_unhashed(d)))
		/* Filesystems that leave the dentry unhashed (casefolding) are not supported as upper. */
		err = -EIO;
	if (err) {
		if (!IS_ERR(d))
			end_creating(d);
		d = ERR_PTR(err);
		goto out;
	}
	d = end_creating_keep(d);
out:
	mnt_drop_write(mnt);
	return d;
}

/* unlink or rmdir by type, `parent` locked by start_removing*(). */
static int unionrs_remove_locked(struct vfsmount *mnt, struct dentry *parent,
				 struct dentry *d)
{
	if (d_is_dir(d))
		return vfs_rmdir(mnt_idmap(mnt), d_inode(parent), d, NULL);
	return vfs_unlink(mnt_idmap(mnt), d_inode(parent), d, NULL);
}

/* Removes `child` of `parent` (unlink or rmdir by its type). */
int unionrs_remove_real(struct vfsmount *mnt, struct dentry *parent,
			struct dentry *child)
{
	struct dentry *d;
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	d = start_removing_dentry(parent, child);
	if (IS_ERR(d)) {
		err = PTR_ERR(d);
	} else {
		err = unionrs_remove_locked(mnt, parent, d);
		end_removing(d);
	}
	mnt_drop_write(mnt);
	return err;
}

/*
 * Renames `old` (in `old_parent`) to `new` (a dentry in `new_parent`, or the
 * name `new_name` there when `new` is NULL). With `expect_old`/`expect_new`,
 * the objects found under the locks must be those inodes (NULL expect_new
 * with `new_negative`: the target must be negative or a whiteout), else
 * -ESTALE. On success *replaced (if given) is the target dentry after the
 * rename (referenced), e.g. what RENAME_EXCHANGE moved into old_parent.
 */
int unionrs_rename_real(struct vfsmount *mnt, struct dentry *old_parent,
			struct dentry *old, const char *old_name, int old_len,
			struct dentry *new_parent, struct dentry *new,
			const char *new_name, int new_len, unsigned int flags,
			struct inode *expect_old, struct inode *expect_new,
			bool new_negative, struct dentry **replaced)
{
	struct renamedata rd = {
		.mnt_idmap = mnt_idmap(mnt),
		.old_parent = old_parent,
		.new_parent = new_parent,
		.flags = flags,
	};
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	if (old && new)
		err = start_renaming_two_dentries(&rd, old, new);
	else if (old)
		err = start_renaming_dentry(&rd, 0, old, &QSTR_LEN(new_name, new_len));
	else
		err = start_renaming(&rd, 0, &QSTR_LEN(old_name, old_len),
				     &QSTR_LEN(new_name, new_len));
	if (err)
		goto out;
	err = -ESTALE;
	if (expect_old && d_inode(rd.old_dentry) != expect_old)
		goto unlock;
	if (expect_new && d_inode(rd.new_dentry) != expect_new)
		goto unlock;
	if (new_negative && d_is_positive(rd.new_dentry) &&
	    !IS_WHITEOUT(d_inode(rd.new_dentry)))
		goto unlock;
	if (d_inode(rd.old_dentry) == d_inode(rd.new_dentry))
		goto unlock;
	err = vfs_rename(&rd);
	if (!err && replaced)
		*replaced = dget(rd.new_dentry);
unlock:
	end_renaming(&rd);
out:
	mnt_drop_write(mnt);
	return err;
}

int unionrs_setxattr_real(struct vfsmount *mnt, struct dentry *d,
			  const char *name, const void *value, size_t size,
			  int flags)
{
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	err = vfs_setxattr(mnt_idmap(mnt), d, name, value, size, flags);
	mnt_drop_write(mnt);
	return err;
}

int unionrs_removexattr_real(struct vfsmount *mnt, struct dentry *d,
			     const char *name)
{
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	err = vfs_removexattr(mnt_idmap(mnt), d, name);
	mnt_drop_write(mnt);
	return err;
}

/*
 * Changes attributes of a real object as the union's caller asked (a copy
 * of its iattr). ATTR_FILE is dropped: the real fs must not look at our file.
 * A size change needs write access to the real inode, as for truncate(2).
 */
int unionrs_setattr_real(struct vfsmount *mnt, struct dentry *d,
			 struct iattr *attr)
{
	struct inode *inode = d_inode(d);
	bool size = attr->ia_valid & ATTR_SIZE;
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	if (size) {
		err = get_write_access(inode);
		if (err)
			goto out;
	}
	attr->ia_valid &= ~(ATTR_FILE | ATTR_OPEN);
	attr->ia_file = NULL;
	/* notify_change() derives these from the mode change itself. */
	if (attr->ia_valid & (ATTR_KILL_SUID | ATTR_KILL_SGID))
		attr->ia_valid &= ~ATTR_MODE;
	inode_lock(inode);
	err = notify_change(mnt_idmap(mnt), d, attr, NULL);
	inode_unlock(inode);
	if (size)
		put_write_access(inode);
out:
	mnt_drop_write(mnt);
	return err;
}

/* Gives a copied-up object the attributes `st` of the original. */
int unionrs_copy_attrs_real(struct vfsmount *mnt, struct dentry *d,
			    const struct kstat *st)
{
	struct inode *inode = d_inode(d);
	struct iattr attr;
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	inode_lock(inode);
	if (S_ISREG(st->mode)) {
		attr = (struct iattr){ .ia_valid = ATTR_SIZE, .ia_size = st->size };
		err = notify_change(mnt_idmap(mnt), d, &attr, NULL);
	}
	if (!err && !S_ISLNK(st->mode)) {
		attr = (struct iattr){ .ia_valid = ATTR_MODE, .ia_mode = st->mode };
		err = notify_change(mnt_idmap(mnt), d, &attr, NULL);
	}
	if (!err) {
		attr = (struct iattr){
			.ia_valid = ATTR_UID | ATTR_GID,
			.ia_vfsuid = VFSUIDT_INIT(st->uid),
			.ia_vfsgid = VFSGIDT_INIT(st->gid),
		};
		err = notify_change(mnt_idmap(mnt), d, &attr, NULL);
	}
	if (!err) {
		attr = (struct iattr){
			.ia_valid = ATTR_ATIME | ATTR_MTIME | ATTR_ATIME_SET |
				    ATTR_MTIME_SET | ATTR_CTIME,
			.ia_atime = st->atime,
			.ia_mtime = st->mtime,
		};
		err = notify_change(mnt_idmap(mnt), d, &attr, NULL);
	}
	inode_unlock(inode);
	mnt_drop_write(mnt);
	return err;
}

int unionrs_getattr_real(const struct path *p, struct kstat *st)
{
	return vfs_getattr(p, st, STATX_BASIC_STATS, AT_STATX_SYNC_AS_STAT);
}

/*
 * Copies the xattrs of `from` to `to` (on writable mount `mnt`), except the
 * names starting with `skip_prefix` (the union's private ones) and what the
 * LSM says not to copy. POSIX ACLs go through the ACL API.
 */
int unionrs_copy_xattrs_real(const struct path *from, struct vfsmount *mnt,
			     struct dentry *to, const char *skip_prefix)
{
	ssize_t list_size, size;
	char *buf, *name, *value = NULL;
	size_t value_size = 0, skip_len = strlen(skip_prefix);
	int err = 0;

	list_size = vfs_listxattr(from->dentry, NULL, 0);
	if (list_size <= 0)
		return list_size == -EOPNOTSUPP ? 0 : list_size;
	buf = kvzalloc(list_size, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	list_size = vfs_listxattr(from->dentry, buf, list_size);
	if (list_size <= 0) {
		err = list_size;
		goto out;
	}
	err = mnt_want_write(mnt);
	if (err)
		goto out;
	for (name = buf; list_size; name += strlen(name) + 1) {
		size_t slen = strnlen(name, list_size) + 1;

		if (WARN_ON(slen > list_size)) {
			err = -EIO;
			break;
		}
		list_size -= slen;
		/* Our own names, but not escaped ones (prefix + "overlay."). */
		if (!strncmp(name, skip_prefix, skip_len) &&
		    strncmp(name + skip_len, "overlay.", 8))
			continue;
		err = security_inode_copy_up_xattr(from->dentry, name);
		if (err == -ECANCELED) {
			err = 0;
			continue;
		}
		if (err < 0 && err != -EOPNOTSUPP)
			break;
		err = 0;
		if (is_posix_acl_xattr(name)) {
			struct posix_acl *acl =
				vfs_get_acl(mnt_idmap(from->mnt), from->dentry, name);

			if (IS_ERR(acl)) {
				err = PTR_ERR(acl) == -ENODATA ? 0 : PTR_ERR(acl);
				if (err)
					break;
				continue;
			}
			err = vfs_set_acl(mnt_idmap(mnt), to, name, acl);
			posix_acl_release(acl);
			if (err)
				break;
			continue;
		}
retry:
		size = vfs_getxattr(mnt_idmap(from->mnt), from->dentry, name,
				    value, value_size);
		if (size == -ERANGE)
			size = vfs_getxattr(mnt_idmap(from->mnt), from->dentry,
					    name, NULL, 0);
		if (size < 0) {
			err = size;
			break;
		}
		if (size > value_size) {
			void *nv = kvmalloc(size, GFP_KERNEL);

			if (!nv) {
				err = -ENOMEM;
				break;
			}
			kvfree(value);
			value = nv;
			value_size = size;
			goto retry;
		}
		err = vfs_setxattr(mnt_idmap(mnt), to, name, value, size, 0);
		if (err == -EOPNOTSUPP && !strncmp(name, "trusted.", 8))
			err = 0; /* as overlayfs: an upper fs without trusted.* loses them */
		if (err)
			break;
	}
	mnt_drop_write(mnt);
out:
	kvfree(value);
	kvfree(buf);
	return err;
}

#define UNIONRS_COPY_CHUNK (1 << 20)

/*
 * Copies `len` bytes of data from `from` to the new regular file `to`:
 * cloned where the filesystems can share extents, else copied range by range
 * (copy_file_range, or splice across filesystems), skipping the holes of
 * the source so that sparse files stay sparse. A copy is synced before
 * returning, so that the file can be moved into place.
 */
int unionrs_copy_data_real(const struct path *from, const struct path *to,
			   loff_t len)
{
	struct file *in, *out;
	loff_t pos = 0, data;
	bool seek = true;
	int err = 0;

	in = kernel_file_open(from, O_LARGEFILE | O_RDONLY, current_cred());
	if (IS_ERR(in))
		return PTR_ERR(in);
	out = kernel_file_open(to, O_LARGEFILE | O_WRONLY, current_cred());
	if (IS_ERR(out)) {
		fput(in);
		return PTR_ERR(out);
	}
	/*
	 * A clone shares the extents in one metadata transaction, which the
	 * filesystem's log orders before the rename that follows: no fsync,
	 * as in overlayfs.
	 */
	if (len && vfs_clone_file_range(in, 0, out, 0, len, 0) == len)
		goto out;
	while (pos < len) {
		size_t chunk = min_t(loff_t, len - pos, UNIONRS_COPY_CHUNK);
		loff_t in_pos, out_pos;
		ssize_t n;

		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		if (seek) {
			data = vfs_llseek(in, pos, SEEK_DATA);
			if (data == -ENXIO)
				break; /* a hole up to the end */
			if (data < 0) {
				seek = false;
			} else if (data > pos) {
				pos = data;
				continue;
			}
		}
		n = vfs_copy_file_range(in, pos, out, pos, chunk, 0);
		if (n == -EXDEV || n == -EOPNOTSUPP || n == -EINVAL) {
			in_pos = out_pos = pos;
			n = do_splice_direct(in, &in_pos, out, &out_pos, chunk,
					     SPLICE_F_MOVE);
		}
		if (n <= 0) {
			err = n ? n : -EIO;
			break;
		}
		pos += n;
	}
	if (!err)
		err = vfs_fsync(out, 0);
out:
	fput(out);
	fput(in);
	return err;
}

/* The target of a real symlink, copied into a new kmalloc'ed string. */
char *unionrs_readlink_real(struct dentry *d)
{
	DEFINE_DELAYED_CALL(done);
	const char *link = vfs_get_link(d, &done);
	char *copy;

	if (IS_ERR(link))
		return ERR_CAST(link);
	copy = kstrdup(link, GFP_KERNEL);
	do_delayed_call(&done);
	return copy ? copy : ERR_PTR(-ENOMEM);
}

/*
 * Credentials for creating an object on behalf of the caller: the mounter's,
 * with the caller's fsuid and the group a new inode in the union directory
 * `dir` gets (its group if it is setgid), so that the real object gets the
 * owner the union object has. Must be called with the caller's credentials;
 * returns them (to give to unionrs_creator_end) or an ERR_PTR.
 */
const struct cred *unionrs_creator_begin(const struct cred *mounter,
					 struct inode *dir)
{
	kuid_t uid = current_fsuid();
	kgid_t gid = current_fsgid();
	const struct cred *old;
	struct cred *c;

	if (dir && (dir->i_mode & S_ISGID))
		gid = dir->i_gid;
	old = override_creds(mounter);
	c = prepare_creds();
	if (!c) {
		revert_creds(old);
		return ERR_PTR(-ENOMEM);
	}
	c->fsuid = uid;
	c->fsgid = gid;
	override_creds(c);
	return old;
}

void unionrs_creator_end(const struct cred *old)
{
	put_cred(revert_creds(old));
}

ssize_t unionrs_backing_write_iter(struct file *real, struct kiocb *iocb,
				   struct iov_iter *iter, const struct cred *cred)
{
	struct backing_file_ctx ctx = {
		.cred = cred,
	};
	struct inode *inode = file_inode(iocb->ki_filp);
	ssize_t ret;

	if (!iov_iter_count(iter))
		return 0;
	inode_lock(inode);
	ret = backing_file_write_iter(real, iter, iocb, iocb->ki_flags, &ctx);
	fsstack_copy_inode_size(inode, file_inode(real));
	inode_unlock(inode);
	return ret;
}

ssize_t unionrs_backing_splice_write(struct file *real, struct pipe_inode_info *pipe,
				     struct file *out, loff_t *ppos, size_t len,
				     unsigned int flags, const struct cred *cred)
{
	struct backing_file_ctx ctx = {
		.cred = cred,
	};
	struct inode *inode = file_inode(out);
	struct kiocb iocb;
	ssize_t ret;

	inode_lock(inode);
	init_sync_kiocb(&iocb, out);
	iocb.ki_pos = *ppos;
	ret = backing_file_splice_write(pipe, real, &iocb, len, flags, &ctx);
	*ppos = iocb.ki_pos;
	fsstack_copy_inode_size(inode, file_inode(real));
	inode_unlock(inode);
	return ret;
}

long unionrs_fallocate_real(struct file *file, struct file *real, int mode,
			    loff_t offset, loff_t len, const struct cred *cred)
{
	struct inode *inode = file_inode(file);
	long ret;

	inode_lock(inode);
	/* With the caller's credentials: the real fs would keep suid for the mounter. */
	ret = file_remove_privs(file);
	if (!ret) {
		scoped_with_creds(cred)
			ret = vfs_fallocate(real, mode, offset, len);
		fsstack_copy_inode_size(inode, file_inode(real));
	}
	inode_unlock(inode);
	return ret;
}

int unionrs_fsync_file(struct file *real, loff_t start, loff_t end, int datasync)
{
	return vfs_fsync_range(real, start, end, datasync);
}

/* Whether the union directory entry is hashed (still names its object). */
void unionrs_d_drop(struct dentry *d)
{
	d_drop(d);
}

void unionrs_d_instantiate(struct dentry *d, struct inode *inode)
{
	d_instantiate(d, inode);
}

struct dentry *unionrs_dget_parent(struct dentry *d)
{
	return dget_parent(d);
}

/* A stable copy of a dentry's name (it may be renamed meanwhile). */
int unionrs_dentry_name(struct dentry *d, char *buf, int size)
{
	struct name_snapshot n;
	int len;

	take_dentry_name_snapshot(&n, d);
	len = n.name.len;
	if (len <= size)
		memcpy(buf, n.name.name, len);
	release_dentry_name_snapshot(&n);
	return len <= size ? len : -ENAMETOOLONG;
}

/* Refreshes a union inode's attributes from its real inode after a change. */
void unionrs_copy_attr(struct inode *dest, struct inode *src)
{
	unsigned int mask = S_SYNC | S_NOATIME | S_APPEND | S_IMMUTABLE | S_CASEFOLD;
	unsigned int keep;

	spin_lock(&dest->i_lock);
	keep = dest->i_flags & ~mask;
	fsstack_copy_attr_all(dest, src);
	dest->i_flags = keep | (src->i_flags & mask);
	spin_unlock(&dest->i_lock);
	fsstack_copy_inode_size(dest, src);
}

bool unionrs_is_whiteout_dentry(struct dentry *d)
{
	return d_is_positive(d) && IS_WHITEOUT(d_inode(d));
}

/* The in-use mark overlayfs puts on upper and work directories. */
bool unionrs_inuse_trylock(struct dentry *d)
{
	struct inode *inode = d_inode(d);
	bool locked = false;

	spin_lock(&inode->i_lock);
	if (!(inode_state_read(inode) & I_OVL_INUSE)) {
		inode_state_set(inode, I_OVL_INUSE);
		locked = true;
	}
	spin_unlock(&inode->i_lock);
	return locked;
}

void unionrs_inuse_unlock(struct dentry *d)
{
	struct inode *inode = d_inode(d);

	spin_lock(&inode->i_lock);
	inode_state_clear(inode, I_OVL_INUSE);
	spin_unlock(&inode->i_lock);
}

bool unionrs_is_our_sb(struct super_block *sb)
{
	return sb->s_type == &unionrs_fs_type;
}

static int unionrs_dummy_open(struct inode *inode, struct file *file)
{
	return 0;
}

/* An O_TMPFILE file in upper directory `parent`, as the current (creator) credentials. */
struct file *unionrs_backing_tmpfile(struct file *user_file,
				     const struct path *parent, umode_t mode)
{
	struct file *f;
	int err = mnt_want_write(parent->mnt);

	if (err)
		return ERR_PTR(err);
	f = backing_tmpfile_open(user_file, user_file->f_flags | O_LARGEFILE | O_NOATIME,
				 parent, mode, current_cred());
	mnt_drop_write(parent->mnt);
	return f;
}

/*
 * Makes the O_TMPFILE union dentry of `file` positive with `inode` (whose
 * reference it takes) and finishes opening `file`.
 */
int unionrs_tmpfile_finish(struct file *file, struct inode *inode)
{
	struct dentry *dentry = file->f_path.dentry;

	d_mark_tmpfile(file, inode);
	d_instantiate(dentry, inode);
	return finish_open(file, dentry, unionrs_dummy_open);
}

bool unionrs_file_opened(struct file *file)
{
	return file->f_mode & FMODE_OPENED;
}

/* Sets (or removes, for a NULL acl) a POSIX ACL of a real object. */
int unionrs_set_acl_real(struct vfsmount *mnt, struct dentry *d, int type,
			 struct posix_acl *acl)
{
	const char *name = type == ACL_TYPE_ACCESS ? XATTR_NAME_POSIX_ACL_ACCESS :
						     XATTR_NAME_POSIX_ACL_DEFAULT;
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	if (acl)
		err = vfs_set_acl(mnt_idmap(mnt), d, name, acl);
	else
		err = vfs_remove_acl(mnt_idmap(mnt), d, name);
	mnt_drop_write(mnt);
	return err;
}

/* A new random uuid (16 bytes). */
void unionrs_uuid_gen(u8 *out)
{
	uuid_t u;

	uuid_gen(&u);
	memcpy(out, u.b, UUID_SIZE);
}

/* The union's uuid (reported by statx/FS_IOC_GETFSUUID), from its upper layer. */
void unionrs_sb_set_uuid(struct super_block *sb, const u8 *uuid)
{
	super_set_uuid(sb, uuid, UUID_SIZE);
}

/* Puts back the access and modification times `st` on a real object. */
int unionrs_set_times_real(struct vfsmount *mnt, struct dentry *d,
			   const struct kstat *st)
{
	struct iattr attr = {
		.ia_valid = ATTR_ATIME | ATTR_MTIME | ATTR_ATIME_SET |
			    ATTR_MTIME_SET | ATTR_CTIME,
		.ia_atime = st->atime,
		.ia_mtime = st->mtime,
	};
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	inode_lock(d_inode(d));
	err = notify_change(mnt_idmap(mnt), d, &attr, NULL);
	inode_unlock(d_inode(d));
	mnt_drop_write(mnt);
	return err;
}

/*
 * Removes `name` from `parent` (unlink or rmdir by its type), if it is still
 * `expect` (else -ESTALE): a union object's names are checked by inode, since
 * hard links share one.
 */
int unionrs_remove_name(struct vfsmount *mnt, struct dentry *parent,
			const char *name, int len, struct inode *expect)
{
	struct dentry *d;
	int err = mnt_want_write(mnt);

	if (err)
		return err;
	d = start_removing(mnt_idmap(mnt), parent, &QSTR_LEN(name, len));
	if (IS_ERR(d)) {
		err = PTR_ERR(d);
	} else {
		err = d_inode(d) == expect ? unionrs_remove_locked(mnt, parent, d) : -ESTALE;
		end_removing(d);
	}
	mnt_drop_write(mnt);
	return err;
}

bool unionrs_d_unhashed(struct dentry *d)
{
	return d_unhashed(d);
}
