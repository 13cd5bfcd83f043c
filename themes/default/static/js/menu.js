// The member menu (「プロフィール変更」, 「ログイン方法変更」) folds behind the 「三本線」
// button on phones (manual §3-1 ①). The button ships hidden and the menu open, so a page
// without this script still shows every entry; the stylesheet folds the menu only on
// narrow screens and hides the button on wide ones.
(function () {
  'use strict';
  var button = document.querySelector('.menu-toggle');
  var menu = button && document.getElementById(button.getAttribute('aria-controls'));
  if (!menu) return;

  function setOpen(open) {
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
    menu.classList.toggle('is-open', open);
  }

  menu.classList.add('is-collapsible');
  setOpen(false);
  button.hidden = false;

  button.addEventListener('click', function () {
    setOpen(button.getAttribute('aria-expanded') !== 'true');
  });
  // Escape closes an open menu and returns to its button.
  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape' && button.getAttribute('aria-expanded') === 'true') {
      setOpen(false);
      button.focus();
    }
  });
})();
